"""Is this process able to do its work? The checks behind the health endpoints
(``/health/`` for liveness, ``/health/ready/`` for a load balancer) and behind
``manage.py health --kind web|worker|beat``, the readiness answer of each process kind.

Workers and beat prove they are alive by touching a heartbeat file (a Celery bootstep
and the beat scheduler, in ``config.celery``); the check reads its age.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import connection

#: How a check reports: None when all is well, else what is wrong, in words.
Check = Callable[[], str | None]

PROCESS_KINDS = ("web", "worker", "beat")


def database() -> str | None:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means "not reachable"
        return f"database unreachable: {exc.__class__.__name__}: {exc}"
    return None


def broker() -> str | None:
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.CRM_HEALTH_TIMEOUT_SECONDS)
    except Exception as exc:  # kombu raises the transport's own errors
        return f"broker unreachable: {exc.__class__.__name__}: {exc}"
    return None


def storage() -> str | None:
    try:
        default_storage.exists("health-probe")
    except Exception as exc:  # file system or object storage errors alike
        return f"blob storage unreachable: {exc.__class__.__name__}: {exc}"
    return None


def shared_cache() -> str | None:
    try:
        cache.get("health-probe")
    except Exception as exc:
        return f"cache unreachable: {exc.__class__.__name__}: {exc}"
    return None


def heartbeat_path(kind: str) -> Path:
    return Path(settings.CRM_HEARTBEAT_DIR) / f"{kind}.alive"


def touch_heartbeat(kind: str) -> None:
    path = heartbeat_path(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def heartbeat(kind: str) -> Check:
    def check() -> str | None:
        path = heartbeat_path(kind)
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return f"no {kind} heartbeat at {path}: the {kind} has not started"
        if age > settings.CRM_HEARTBEAT_MAX_AGE_SECONDS:
            return f"{kind} heartbeat is {age:.0f} s old: the {kind} is stuck or stopped"
        return None

    check.__name__ = f"{kind}_heartbeat"
    return check


CHECKS: dict[str, list[Check]] = {
    "web": [database, broker, storage, shared_cache],
    "worker": [database, broker, storage, heartbeat("worker")],
    "beat": [broker, heartbeat("beat")],
}


def readiness(kind: str) -> dict[str, str]:
    """Each check's name and "ok" or what is wrong."""
    if kind not in CHECKS:
        raise ValueError(f"unknown process kind {kind!r}: one of {', '.join(PROCESS_KINDS)}")
    return {check.__name__: check() or "ok" for check in CHECKS[kind]}
