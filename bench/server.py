"""The web server of W3 and W4: the project's WSGI app in Django's threaded server.

What ``manage.py runserver --noreload`` runs (one thread per connection, keep-alive),
without the autoreloader, the system checks and the request log. It counts the SQL
statements of all its threads and the requests it answered; on SIGTERM it writes them
and its peak RSS to ``--stats`` as JSON. On start it prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stats", required=True)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    from .measure import count_on_every_connection, peak_rss_mb

    queries = count_on_every_connection()
    requests = [0]
    lock = threading.Lock()
    django_app = get_wsgi_application()

    def app(environ, start_response):
        with lock:
            requests[0] += 1
        return django_app(environ, start_response)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            pass

    httpd = ThreadedWSGIServer(("127.0.0.1", args.port), QuietHandler, ipv6=False)
    httpd.set_app(app)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"READY {httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        Path(args.stats).write_text(
            json.dumps({"queries": queries.count, "requests": requests[0], "rss_mb": peak_rss_mb()})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
