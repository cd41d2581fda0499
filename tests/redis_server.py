"""A private ``redis-server`` (Debian's) on a free loopback port, for the fault tests.

It keeps nothing on disk (``--save '' --appendonly no``): a restart loses every queued
task, as a Redis without persistence does when it restarts. ``freeze`` stops the
process (SIGSTOP) without closing anything: the kernel still accepts connections and
reads what clients write, but no reply ever comes, as from a hung or partitioned broker.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from .services import unavailable
from .smtp import free_port

REDIS_SERVER = "/usr/bin/redis-server"


def redis_server_binary() -> str | None:
    if Path(REDIS_SERVER).is_file() and os.access(REDIS_SERVER, os.X_OK):
        return REDIS_SERVER
    return shutil.which("redis-server")


class RedisServer:
    """One ``redis-server`` process; ``port`` stays the same across restarts."""

    def __init__(self, binary: str, folder: Path, port: int | None = None):
        self.binary = binary
        self.folder = folder
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        folder.mkdir(parents=True, exist_ok=True)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, *, timeout: float = 20.0) -> RedisServer:
        assert self.proc is None, "already running"
        self.starts += 1
        log = self.folder / f"redis-{self.starts}.log"
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited: {self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server not answering after {timeout}s")
            time.sleep(0.05)
        return self

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Shut down (SIGTERM; it keeps nothing): connections are closed, the port refuses."""
        if self.proc is None:
            return
        self.thaw()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.folder.glob("redis-*.log"))
        )


@contextmanager
def running_redis(folder: Path) -> Iterator[RedisServer]:
    """A started private ``redis-server``, always stopped on the way out; skips (fails
    under ``CRM_REQUIRE_SERVICES``) when Debian's ``redis-server`` is not installed."""
    binary = redis_server_binary()
    if binary is None:
        unavailable("needs redis-server (Debian's redis-server package) for a private Redis")
        raise AssertionError("unreachable")
    server = RedisServer(binary, folder).start()
    try:
        yield server
    finally:
        server.stop()
