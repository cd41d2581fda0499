import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("crm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def purge_network_broker(url: str) -> None:
    """Empty a Redis or AMQP broker of every waiting task. Redis: the whole database is
    flushed, which also drops what killed workers left unacknowledged (so name a
    database of its own). For tests and the benchmark, never for a shared broker."""
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()
    else:
        app.control.purge()
