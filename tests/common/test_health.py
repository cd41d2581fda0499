"""The health endpoints and ``manage.py health``: what each process kind needs, checked
for real (the test database, the configured broker, the blob folder, the cache)."""

from __future__ import annotations

import os
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from kombu import Connection

from common import health


@pytest.fixture
def heartbeats(settings, tmp_path):
    settings.CRM_HEARTBEAT_DIR = tmp_path / "heartbeat"
    return settings.CRM_HEARTBEAT_DIR


@pytest.mark.django_db
def test_live_answers_without_sign_in_and_without_checks(settings):
    settings.SECURE_SSL_REDIRECT = True  # load balancers ask over plain HTTP
    response = Client().get("/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_ready_checks_database_broker_storage_and_cache():
    response = Client().get("/health/ready/")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "storage": "ok", "shared_cache": "ok"},
    }


@pytest.mark.django_db
def test_ready_is_503_with_the_reason_when_the_broker_is_unreachable(monkeypatch):
    class NoBroker:  # a real connection attempt, to a port where nothing listens
        def connection_for_write(self):
            return Connection("redis://127.0.0.1:1/0")

    monkeypatch.setattr(health, "current_app", NoBroker())
    response = Client().get("/health/ready/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"].startswith("broker unreachable:")
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_ready_is_503_when_blob_storage_fails(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "none",
                "endpoint_url": "http://127.0.0.1:1",
                "access_key": "x",
                "secret_key": "y",
            },
        },
    }
    response = Client().get("/health/ready/")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"].startswith("blob storage unreachable:")


def test_only_safe_methods():
    assert Client().post("/health/").status_code == 405


@pytest.mark.django_db
def test_the_web_kind_is_ready_here(capsys):
    call_command("health", kind="web")
    assert "database: ok" in capsys.readouterr().out


@pytest.mark.django_db
def test_a_worker_without_heartbeat_is_not_ready_and_the_reason_is_given(heartbeats):
    with pytest.raises(CommandError, match="worker is not ready: no worker heartbeat"):
        call_command("health", kind="worker")
    health.touch_heartbeat("worker")
    call_command("health", kind="worker")


@pytest.mark.django_db
def test_a_stale_heartbeat_means_a_stuck_process(heartbeats, settings):
    health.touch_heartbeat("beat")
    old = time.time() - settings.CRM_HEARTBEAT_MAX_AGE_SECONDS - 5
    os.utime(health.heartbeat_path("beat"), (old, old))
    with pytest.raises(CommandError, match=r"beat heartbeat is \d+ s old"):
        call_command("health", kind="beat")


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown process kind 'cron'"):
        health.readiness("cron")
