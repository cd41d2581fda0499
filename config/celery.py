import logging
import os

from celery import Celery, bootsteps
from celery.beat import PersistentScheduler
from celery.worker.consumer import Consumer as CeleryConsumer
from django.conf import settings
from kombu.transport import TRANSPORT_ALIASES

from common.health import touch_heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# ``filesystem://`` is kombu's file-system transport with whole messages only
# (config/broker.py): by the URL's scheme, so that a process told another broker URL
# (a test's private Redis, an operator's) takes that broker's transport as before.
TRANSPORT_ALIASES["filesystem"] = "config.broker:Transport"

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

logger = logging.getLogger(__name__)


class Consumer(CeleryConsumer):
    """Celery's consumer (``CELERY_WORKER_CONSUMER``), kept alive when the connection to
    a Redis broker is lost while the worker holds messages.

    Celery then closes the lost connection, and kombu's Redis channel, closing, puts the
    messages this worker held unacknowledged (a running task, a retry waiting for its
    countdown) back on the queue through a transport whose client it has already let go:
    an ``AttributeError`` (``'NoneType' object has no attribute 'hostname'``) that escaped
    as an "Unrecoverable error" and stopped the whole worker (kombu 5.7.0). Those
    messages were not lost by the worker: a restarted Redis lost them itself, or hands
    them out again after the visibility timeout; a task the worker drops is found by the
    sweep by its email's due time (tests/activities/test_faults_broker.py). So the error
    is logged and the consumer reconnects as after any lost connection.
    """

    def on_connection_error_after_connected(self, exc):
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as error:
            logger.warning(
                "broker connection lost (%r); closing it failed (%r), reconnecting", exc, error
            )


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
