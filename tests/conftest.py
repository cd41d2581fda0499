from __future__ import annotations

import pytest
from django.core.mail import get_connection

from activities.mail import encoded_blobs
from config.celery import app as celery_app
from crm.models import EmailApproval, Organization, Queue, User

from .dovecot import USERS, Dovecot, start_dovecot
from .factories import ApproverFactory, QueueFactory, UserFactory
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


# --- the personas ----------------------------------------------------------------------
# Who may see and act on what (docs/api.md, "Who sees what"): a test names the relation it
# is about by asking for the persona that has it. Only ``staff`` is staff: staff see every
# email, so a test about the owner, the teammate or the outsider cannot pass because of
# the staff flag. Each has a fixed name, so pages and headers can be compared exactly.


@pytest.fixture
def owner(db) -> User:
    """Alice Archer: owns the emails she creates and sends as herself; approved address
    alice@staff.example.com; a member of ``team_queue``; not staff."""
    return UserFactory(
        username="alice", first_name="Alice", last_name="Archer", email="alice@staff.example.com"
    )


@pytest.fixture
def teammate(db) -> User:
    """Bob Berg: shares ``team_queue`` with the owner, so he sees and acts on the queue's
    mail, not on the owner's own; not staff."""
    return UserFactory(username="bob", first_name="Bob", last_name="Berg")


@pytest.fixture
def outsider(db) -> User:
    """Charlie Cole: signed in, in no queue, not staff, no permission: sees no one's mail."""
    return UserFactory(username="charlie", first_name="Charlie", last_name="Cole")


@pytest.fixture
def staff(db) -> User:
    """Stella Staff: ``is_staff``, in no queue: sees every email, writes templates and
    queues, but may not act for a sender she is not."""
    return UserFactory(username="stella", first_name="Stella", last_name="Staff", is_staff=True)


@pytest.fixture
def approver(db) -> User:
    """Ada Admin: holds ``crm.approve_email_address``; not staff, in no queue."""
    return ApproverFactory(username="ada", first_name="Ada", last_name="Admin")


@pytest.fixture
def team_queue(owner, teammate) -> Queue:
    """Support <support@example.com>: approved, the owner and the teammate its members."""
    return QueueFactory(name="Support", email="support@example.com", members=[owner, teammate])


@pytest.fixture
def superuser(db) -> User:
    """The Django admin's superuser (staff, every permission), as the demo's ``admin``;
    pytest-django's ``admin_user`` has no approved address."""
    return User.objects.create_superuser(
        "admin", "admin@example.com", "demo", email_router_access_approval=EmailApproval.APPROVED
    )


@pytest.fixture
def superuser_client(client, superuser):
    """pytest-django's ``client``, signed in as ``superuser``."""
    client.force_login(superuser)
    return client


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


@pytest.fixture(scope="session")
def dovecot_session():
    """One private Dovecot for the session (tests/dovecot.py); skips, or fails under
    CRM_REQUIRE_SERVICES, when it cannot run."""
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture
def dovecot(dovecot_session, settings) -> Dovecot:
    """The session's Dovecot with empty mailboxes, its test CA trusted by the polls."""
    for user in USERS:
        dovecot_session.clear(user)
    settings.CRM_MAILBOX_CA_FILE = str(dovecot_session.ca_file)
    settings.CRM_MAILBOX_TIMEOUT = 5.0
    return dovecot_session
