"""``bin/run`` (the README's first command) serves the app and stops everything it
started on Ctrl-C or SIGTERM, within seconds: the web server, the worker with its pool
and its beat. Each case runs the script as a new user would, in a session of its own,
on a data folder of its own, and then looks in /proc for anything of that session left."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# Variables of the test run that bin/run must not inherit.
_CLEARED = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "SECRET_KEY",
    "EMAIL_URL",
    "CRM_HTTPS",
    "CRM_STATIC_HASHED",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_processes(sid: int) -> list[int]:
    """The processes still in session ``sid`` (zombies count: they are still there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[3]) == sid:  # after ")": state, ppid, pgrp, session
            found.append(int(entry.name))
    return found


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready/", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.mark.parametrize(
    "how",
    ["SIGINT to the group (Ctrl-C)", "SIGTERM to the group", "SIGTERM to the script"],
)
def test_bin_run_serves_and_leaves_no_process_behind(tmp_path, how):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update(PORT=str(port), CRM_DATA_DIR=str(tmp_path / "data"))
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen(
        [str(ROOT / "bin" / "run")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: up(port), 120, "bin/run to answer /health/ready/")
        # Served by gunicorn, with DEBUG off: an unknown page is a plain 404.
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/no-such-page/", timeout=5)
        except urllib.error.HTTPError as err:
            assert err.code == 404
            assert b"Traceback" not in err.read()
        assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0
        wait_until(
            lambda: (tmp_path / "data" / "heartbeat" / "worker.alive").exists(),
            30,
            "the worker's heartbeat",
        )
        started = session_processes(proc.pid)
        assert len(started) >= 5, started  # script, gunicorn + 2 workers, celery + pool + beat

        sent_at = time.monotonic()
        if how.startswith("SIGINT"):
            os.killpg(proc.pid, signal.SIGINT)
        elif how == "SIGTERM to the group":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        wait_until(lambda: not session_processes(proc.pid), 5, "the last process to go")
        took = time.monotonic() - sent_at
        assert took < 20, f"stopping took {took:.1f} s"
        assert proc.returncode == 0
        text = (tmp_path / "run.log").read_text(errors="replace")
        assert "==> stopping" in text
        # Warm shutdown: the worker was not killed, it stopped.
        worker_log = (tmp_path / "data" / "worker.log").read_text(errors="replace")
        assert "Warm shutdown" in worker_log
    finally:
        for pid in session_processes(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        print((tmp_path / "run.log").read_text(errors="replace")[-3000:])
