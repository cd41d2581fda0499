from __future__ import annotations

import pytest
from django.core.mail import get_connection

from activities.mail import encoded_blobs
from config.celery import app as celery_app
from crm.models import Organization

from .smtp import SMTPServer


@pytest.fixture(autouse=True)
def _media_and_outbox(settings, tmp_path):
    """Each test stores blobs and outbox files in its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.OUTBOX_DIR = tmp_path / "outbox"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "activities.storage.BlobFileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    encoded_blobs.clear()
    yield
    encoded_blobs.clear()


@pytest.fixture
def org(db) -> Organization:
    return Organization.get()


@pytest.fixture
def smtp_server():
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_settings(settings, smtp_server):
    """Route Django's mail through the real in-test SMTP server."""
    settings.EMAIL_BACKEND = "activities.mail.SMTPBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    return smtp_server


@pytest.fixture
def smtp_connection(smtp_settings):
    return get_connection()


@pytest.fixture
def eager_celery():
    """Tasks run where they are queued: in the test, or in the live server's request
    for browser tests, once the transaction that queued them commits."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
