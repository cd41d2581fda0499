import os

from celery import Celery, bootsteps
from celery.beat import PersistentScheduler
from django.conf import settings

from common.health import touch_heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("crm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Touches the worker's heartbeat file every CRM_HEARTBEAT_SECONDS while its event
    loop runs (``manage.py health --kind worker`` reads its age)."""

    requires = ("celery.worker.components:Timer",)

    def start(self, worker) -> None:
        touch_heartbeat("worker")
        self.tref = worker.timer.call_repeatedly(
            settings.CRM_HEARTBEAT_SECONDS, touch_heartbeat, ("worker",), priority=10
        )

    def stop(self, worker) -> None:
        tref = getattr(self, "tref", None)
        if tref is not None:
            tref.cancel()


app.steps["worker"].add(WorkerHeartbeat)


class HeartbeatScheduler(PersistentScheduler):
    """Beat's scheduler, touching the beat heartbeat file on every tick (at least every
    sweep interval) for ``manage.py health --kind beat``."""

    def tick(self, *args, **kwargs):
        touch_heartbeat("beat")
        return super().tick(*args, **kwargs)


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
