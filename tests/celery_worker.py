"""Real ``celery -A config worker`` processes for tests, working on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from kombu import pools

from .services import unavailable

# Variables of the test's own environment that would send the worker elsewhere.
_NOT_INHERITED = ("EMAIL_BACKEND", "CELERY_TASK_ALWAYS_EAGER", "OUTBOX_DIR")


def worker_database_url() -> str:
    """The URL of the database this test runs on (the test database, not the configured one)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if connection.vendor == "postgresql":
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth}@{db.get('HOST') or 'localhost'}{port}/{quote(db['NAME'])}"
    unavailable(f"no worker database URL for the {connection.vendor} backend")
    raise AssertionError("unreachable")


def _reconnect(app) -> None:
    """Drop the producer connections, so the next publish uses the current options.

    The same reset Celery does in a forked child (``Celery._after_fork``), plus kombu's
    registry of pools: ``app.pool`` comes from it, and a pool merely closed there would
    be handed out again, closed ("Acquire on closed pool"), to every later publish.
    """
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def private_broker(data_dir: Path) -> Iterator[dict[str, str]]:
    """A broker that only this test and its workers use; yields the workers' env for it.

    File system: this process publishes into folders under ``data_dir`` for the
    duration, and a worker started with ``CRM_DATA_DIR=data_dir`` consumes from the
    same folders, so neither a local ``bin/run`` worker nor another test run takes
    these tasks. Redis: the suite's broker URL must name a database of its own (e.g.
    ``/14``); it is flushed, which also drops what killed workers left unacknowledged.
    """
    from config.celery import app, purge_network_broker

    url = settings.CELERY_BROKER_URL
    env = {"CELERY_BROKER_URL": url, "CRM_DATA_DIR": str(data_dir)}
    if url.startswith("filesystem://"):
        data_root = Path(settings.DATA_DIR)
        options = {}
        for key, value in settings.CELERY_BROKER_TRANSPORT_OPTIONS.items():
            if isinstance(value, str) and Path(value).is_relative_to(data_root):
                value = str(data_dir / Path(value).relative_to(data_root))
                Path(value).mkdir(parents=True, exist_ok=True)
            options[key] = value
        previous = app.conf.broker_transport_options
        app.conf.broker_transport_options = options
        _reconnect(app)
        try:
            yield env
        finally:
            app.conf.broker_transport_options = previous
            _reconnect(app)
        return
    purge_network_broker(url)
    yield env


def worker_env(*, broker: dict[str, str], smtp_port: int, **overrides: Any) -> dict[str, str]:
    """The environment of a worker on this test's database, broker, blobs and SMTP server.

    ``broker`` is what ``private_broker`` yielded.
    """
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(broker)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=worker_database_url(),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
        EMAIL_TIMEOUT="20",
        CRM_RETRY_BACKOFF_SECONDS="1",
        CRM_SEND_MAX_ATTEMPTS="10",
        CRM_SWEEP_INTERVAL="1",
        CRM_SWEEP_PENDING_AFTER_SECONDS="2",
        CRM_QUIET="1",
        PYTHONUNBUFFERED="1",
    )
    env.update({key: str(value) for key, value in overrides.items()})
    return env


class Worker:
    """One worker with embedded beat, in a process group of its own (it forks)."""

    def __init__(self, name: str, tmp_path: Path, env: dict[str, str]):
        self.name = name
        self.env = env
        self.log_path = tmp_path / f"worker-{name}.log"
        self.schedule = tmp_path / f"beat-{name}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-B",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=INFO",
            "--schedule",
            str(self.schedule),
            "--hostname",
            f"{self.name}-{uuid.uuid4().hex[:8]}@%h",
            "--without-mingle",
            "--without-gossip",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group (main process, pool child, beat): no shutdown at all."""
        assert self.proc is not None
        try:  # the group outlives its leader while a child is alive
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop at once. What the test waited for is in the database by now, and a warm
        or cold shutdown on the file-system transport takes about six seconds."""
        if self.proc is not None:
            self.kill()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@contextmanager
def running_worker(name: str, tmp_path: Path, env: dict[str, str]) -> Iterator[Worker]:
    """A started worker, always stopped on the way out.

    Its log goes to stdout, which pytest shows only for a failing test.
    """
    worker = Worker(name, tmp_path, env).start()
    try:
        yield worker
    finally:
        worker.stop()
        print(f"----- log of worker {name} (exit {worker.proc.returncode}) -----")
        print(worker.log())


def wait_for(
    predicate: Callable[[], Any],
    *,
    what: str,
    timeout: float = 45.0,
    workers: tuple[Worker, ...] = (),
    interval: float = 0.1,
) -> Any:
    """Poll ``predicate`` every ``interval`` seconds until it returns something true;
    fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for worker in workers:
            if not worker.alive():
                raise AssertionError(f"worker {worker.name} exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def queued_tasks(queue: str = "celery") -> int:
    """Messages waiting in ``queue`` of this test's broker (see ``private_broker``):
    published and not yet taken by a worker."""
    from config.celery import app

    with app.connection_for_write() as conn:
        try:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
        except conn.channel_errors:  # Redis: an empty queue is no queue at all
            return 0


def pid_of_client(peer: tuple) -> int:
    """The pid of the local process whose TCP socket is bound to ``peer`` (the client's
    (host, port), as a server on loopback sees it), read from ``/proc`` (Linux)."""
    port = int(peer[1])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] != "0":
                inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    raise AssertionError(f"no process holds the socket of {peer}")


@contextmanager
def broker_at(url: str, data_dir: Path) -> Iterator[dict[str, str]]:
    """Publish from this process to the broker at ``url`` (a private Redis of the test,
    ``tests/redis_server.py``) for the duration; yields the workers' env for it, as
    ``private_broker`` does. The transport options are those the settings give a Redis
    broker, whatever broker the suite itself runs on.

    The read and write URLs are set, not ``broker_url``: Celery answers that one from
    the ``CELERY_BROKER_URL`` variable when it is set (the PostgreSQL + Redis lane)."""
    from config.celery import app

    keys = ("broker_read_url", "broker_write_url", "broker_transport_options")
    previous = {key: app.conf.get(key) for key in keys}
    app.conf.update(
        broker_read_url=url,
        broker_write_url=url,
        broker_transport_options=dict(settings.CRM_REDIS_BROKER_TRANSPORT_OPTIONS),
    )
    _reconnect(app)
    try:
        yield {"CELERY_BROKER_URL": url, "CRM_DATA_DIR": str(data_dir)}
    finally:
        app.conf.update(previous)
        _reconnect(app)
