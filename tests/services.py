"""Access to the real services the suite talks to, and the rule for when they are absent.

Without ``CRM_REQUIRE_SERVICES`` a test whose service is missing is skipped with the
reason; with it (as in CI) the same test fails, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection


def require_services() -> bool:
    return os.environ.get("CRM_REQUIRE_SERVICES", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    if require_services():
        pytest.fail(f"required service missing (CRM_REQUIRE_SERVICES is set): {reason}")
    pytest.skip(reason)


def need_postgresql() -> None:
    if connection.vendor != "postgresql":
        unavailable("needs PostgreSQL: set DATABASE_URL=postgres://... to run it")


def broker_url() -> str:
    return settings.CELERY_BROKER_URL


def need_network_broker() -> str:
    url = broker_url()
    if url.startswith("filesystem://"):
        unavailable("needs a Redis or RabbitMQ broker: set CELERY_BROKER_URL to run it")
    return url
