"""gunicorn's settings for the web process: ``gunicorn -c config/gunicorn.py config.wsgi``.

Read from the environment like the application's settings (docs/operations.md).
"""

import os

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# A request that takes longer is cut off (the API's own budgets are far below this).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On SIGTERM: stop accepting, finish what runs for up to this long, then exit.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "10"))
keepalive = 5
# Bodies are limited by Django (DATA_UPLOAD_MAX_MEMORY_SIZE, the upload limits);
# header lines and fields by gunicorn's defaults.
# The load balancer or proxy in front sets X-Forwarded-Proto; trust it from these.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Logs to standard output/error, one line per request, for the log collector.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'
# No control socket in the home folder (gunicorn 24+); the process is run, not steered.
control_socket_disable = True
