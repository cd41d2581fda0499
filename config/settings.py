"""Settings for the CRM email activity application.

Every value an operator may change comes from the environment, read here and nowhere
else (names as in shared/DESIGN.md). A malformed value raises ImproperlyConfigured at
start-up rather than failing later.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django_guid.integrations import CeleryIntegration

from common.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DATA_DIR = Path(env.str("CRM_DATA_DIR", default=str(BASE_DIR / "data"))).resolve()

DEBUG = env.bool("DEBUG", default=False)

# No key is known to anyone but this installation: SECRET_KEY from the environment, or
# the file SECRET_KEY_FILE names (default: the data folder's ``secret_key``, which
# ``bin/run`` makes once per installation with a random key). Without either, start-up
# refuses: a key in the source would let anyone who reads it forge unsubscribe links,
# sessions and every other signature.
SECRET_KEY_FILE = Path(env.str("SECRET_KEY_FILE", default=str(DATA_DIR / "secret_key")))
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY and SECRET_KEY_FILE.is_file():
    SECRET_KEY = SECRET_KEY_FILE.read_text().strip()
if not SECRET_KEY:
    raise ImproperlyConfigured(
        f"SECRET_KEY is not set: set the SECRET_KEY environment variable (or write a "
        f"random key to {SECRET_KEY_FILE}; bin/run makes one for the embedded setup)."
    )
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY is too short: use at least 32 random characters.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS ------------------------------------------------------------------------
# With DEBUG off the site is taken to be served over HTTPS behind a proxy that sets
# X-Forwarded-Proto (and overwrites it when a client sends one): cookies only over
# HTTPS, HTTP redirected, HSTS. CRM_HTTPS=false turns the block off for a plain-HTTP
# setup on loopback (bin/run, the tests); each setting can also be set alone.
CRM_HTTPS = env.bool("CRM_HTTPS", default=not DEBUG)
_proxy_header = env.str("SECURE_PROXY_SSL_HEADER", default="X-Forwarded-Proto" if CRM_HTTPS else "")
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=CRM_HTTPS)
# Load balancers probe the health endpoints over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=CRM_HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=CRM_HTTPS)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if CRM_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=CRM_HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Preloading is a submission to the browsers' lists, the operator's decision for the
# whole domain: off unless asked for, and check --deploy's reminder of it (W021) off too.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "django_htmx",
    "django_guid",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "common",
    "crm",
    "activities",
    "demo",
]

MIDDLEWARE = [
    # First, so that every later log line of a request carries its id.
    "django_guid.middleware.guid_middleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files with hashed, compressed names (after collectstatic), before sessions.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The API's JSON 404 and 413 whatever DEBUG is; outside CommonMiddleware, so that
    # APPEND_SLASH redirects first.
    "common.api.middleware.ApiErrorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last: turns a sign-in refused for too many failures into its 429 (common.signin).
    "axes.middleware.AxesMiddleware",
]

# No page may be framed, except an email's own body that the staff pages frame
# (``activities.html.body_frame_response`` allows same-origin framing for it alone).
X_FRAME_OPTIONS = "DENY"

# The staff pages load scripts, styles and images from this site only: no inline
# script, no eval (htmx runs with allowEval off), no remote content. The body frame of an
# email replaces this with a stricter policy of its own. The admin and the API (whose
# Swagger page uses inline script) keep Django's and DRF's own headers.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/admin/", "/api/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
    },
}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web process and the worker share the file.
    # IMMEDIATE: a transaction takes the write lock when it begins, so one that reads
    # and then writes waits for another writer (the timeout) instead of failing with
    # "database is locked" when that writer commits in between.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file (not :memory:) so that test worker processes can open the test database;
    # one per test run, so that runs side by side do not share it.
    _db["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")}
else:
    _db.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    _db.setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "crm.User"

# Sign-in attempts: axes refuses a user from an address after CRM_SIGNIN_FAILURE_LIMIT
# failures in a row, for CRM_SIGNIN_LOCKOUT_MINUTES (a success resets the count); its
# records are in the admin ("Axes"), `manage.py axes_reset` unlocks everyone.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("CRM_SIGNIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("CRM_SIGNIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "common.signin.lockout_response"
# Behind a proxy, the client address is the last of X-Forwarded-For's N entries.
AXES_IPWARE_PROXY_COUNT = env.int("CRM_PROXY_COUNT", default=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Production: collectstatic writes hashed, compressed files to STATIC_ROOT and whitenoise
# serves them with far-future cache headers. DEBUG or CRM_STATIC_HASHED=false (the
# tests): plain names, served by whitenoise from the source folders, looked up per request.
CRM_STATIC_HASHED = env.bool("CRM_STATIC_HASHED", default=not DEBUG)
WHITENOISE_USE_FINDERS = not CRM_STATIC_HASHED
WHITENOISE_AUTOREFRESH = not CRM_STATIC_HASHED
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(DATA_DIR / "staticfiles")))
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))
MEDIA_URL = "media/"

# --- Blob storage ---------------------------------------------------------------
# "default" holds attachment blobs: the file system, or S3-compatible object storage
# through django-storages when AWS_STORAGE_BUCKET_NAME is set. Credentials are boto3's
# own: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN), AWS_PROFILE, or
# the machine's role; none is kept in the settings. boto3 also reads AWS_MAX_ATTEMPTS
# and AWS_RETRY_MODE, and AWS_DEFAULT_REGION when AWS_S3_REGION_NAME is unset.
if env.str("AWS_STORAGE_BUCKET_NAME", default=""):
    _s3_verify = env.str("AWS_S3_VERIFY", default="")
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            # "virtual" (bucket.host), "path" (host/bucket: MinIO, Ceph, moto), or boto3's
            # choice when unset.
            "addressing_style": env.str("AWS_S3_ADDRESSING_STYLE", default=None),
            "signature_version": env.str("AWS_S3_SIGNATURE_VERSION", default=None),
            # A key prefix inside the bucket, for a bucket shared with other data.
            "location": env.str("AWS_LOCATION", default=""),
            # e.g. {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "..."}
            "object_parameters": env.json("AWS_S3_OBJECT_PARAMETERS", default={}),
            # "false" turns TLS verification off; a path names a CA bundle.
            "verify": (
                None
                if not _s3_verify
                else False
                if _s3_verify.lower() in ("0", "false", "no", "off")
                else _s3_verify
            ),
            # Bytes django-storages keeps in memory for a file it reads or writes whole,
            # before it spills to a temporary file (0 would mean never: all in memory).
            "max_memory_size": env.int("AWS_S3_MAX_MEMORY_SIZE", default=1024 * 1024),
            "default_acl": None,
            "querystring_auth": True,
            # Blob names are their content's hash: the same name is the same bytes.
            "file_overwrite": True,
        },
    }
else:
    _default_storage = {
        "BACKEND": "activities.storage.BlobFileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    # Hashed and compressed names (whitenoise, after collectstatic) unless DEBUG is on
    # or CRM_STATIC_HASHED=false (the tests, which serve the source folders).
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if CRM_STATIC_HASHED
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
FILE_UPLOAD_TEMP_DIR = None
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Mail -----------------------------------------------------------------------
# EMAIL_BACKEND (e.g. an anymail backend, with its ANYMAIL_* settings) wins; otherwise
# EMAIL_URL: "outbox" (files under the data folder), smtp://, smtp+tls://, smtps://.
OUTBOX_DIR = Path(env.str("OUTBOX_DIR", default=str(DATA_DIR / "outbox")))
EMAIL_URL = env.str("EMAIL_URL", default="outbox")
# ANYMAIL_* variables are anymail's settings: a provider backend's keys, and for the
# inbound webhooks WEBHOOK_SECRET ("user:password") and MAILGUN_WEBHOOK_SIGNING_KEY.
ANYMAIL = {
    key[len("ANYMAIL_") :]: value for key, value in os.environ.items() if key.startswith("ANYMAIL_")
}
if env.str("EMAIL_BACKEND", default=""):
    EMAIL_BACKEND = env.str("EMAIL_BACKEND")
elif EMAIL_URL in ("outbox", "outbox://"):
    EMAIL_BACKEND = "activities.mail.OutboxBackend"
else:
    try:
        _mail = environ.Env.email_url_config(EMAIL_URL)
    except Exception as exc:  # django-environ raises several types for a bad URL
        raise ImproperlyConfigured(f"EMAIL_URL is not a valid mail URL: {exc}") from exc
    if "EMAIL_BACKEND" not in _mail:
        raise ImproperlyConfigured(f"EMAIL_URL has an unknown scheme: {EMAIL_URL!r}")
    if _mail["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
        # The same, but it keeps the recipients a server refuses while accepting others.
        _mail["EMAIL_BACKEND"] = "activities.mail.SMTPBackend"
    globals().update(_mail)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="crm@example.com")
# The domain used in Message-IDs that this application creates.
CRM_MESSAGE_ID_DOMAIN = env.str("CRM_MESSAGE_ID_DOMAIN", default="crm.localhost")
# Bounces on the SMTP path (VERP): with CRM_BOUNCE_DOMAIN set, each message goes out
# with the envelope sender <CRM_BOUNCE_LOCALPART>+<email id>-<signature>@<domain>, so a
# bounce names its email (activities/services/bounces.py; docs/operations.md).
CRM_BOUNCE_DOMAIN = env.str("CRM_BOUNCE_DOMAIN", default="").strip().lower()
CRM_BOUNCE_LOCALPART = env.str("CRM_BOUNCE_LOCALPART", default="bounces").strip().lower()
if CRM_BOUNCE_DOMAIN and not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", CRM_BOUNCE_DOMAIN):
    raise ImproperlyConfigured(f"CRM_BOUNCE_DOMAIN is not a domain name: {CRM_BOUNCE_DOMAIN!r}")
if not re.fullmatch(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?", CRM_BOUNCE_LOCALPART):
    raise ImproperlyConfigured(
        f"CRM_BOUNCE_LOCALPART must be letters, digits, '.', '_' or '-' (no '+'): "
        f"{CRM_BOUNCE_LOCALPART!r}"
    )
# The address recipients reach this server at: links in mail (unsubscribe) start with it.
CRM_PUBLIC_URL = env.str("CRM_PUBLIC_URL", default="http://127.0.0.1:8000")

# --- Celery ---------------------------------------------------------------------
# The embedded default needs no server: kombu's file-system transport under the data
# folder, served by a local worker that the first README command starts.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
BROKER_DIR = DATA_DIR / "broker"

# Timings (docs/operations.md, "Celery timings"). Tasks are acknowledged late (after they
# ran), and a task published with an ETA or countdown is held unacknowledged by a worker
# until then. A network broker gives a message that stays unacknowledged too long to
# another worker, and again, and again: Redis after its visibility timeout, RabbitMQ
# after its consumer timeout (the server closes the channel and requeues what it held).
# So no message may stay unacknowledged that long:
# - only ETAs within CRM_ETA_HORIZON_SECONDS are published (activities.dispatch); a later
#   one is left to the sweep, which publishes it once it comes within the horizon;
# - every task has a soft and a hard time limit, and long work (a bulk run, a delivery
#   chunk) hands the rest to a new task after CRM_TASK_SLICE_SECONDS.
# A message is unacknowledged for at most the horizon, plus the wait for a pool process
# (one running task: a hard limit, with prefetch 1), plus its own run (a hard limit):
# that sum must stay below the broker's limit, checked below.
CELERY_TASK_SOFT_TIME_LIMIT = env.float("CELERY_TASK_SOFT_TIME_LIMIT", default=300.0)
CELERY_TASK_TIME_LIMIT = env.float("CELERY_TASK_TIME_LIMIT", default=360.0)
# Keep it longer than the sweep's interval: the sweep publishes a scheduled email once it
# comes within the horizon, so it must look in between (else the email goes out late).
CRM_ETA_HORIZON_SECONDS = env.float("CRM_ETA_HORIZON_SECONDS", default=900.0)
CRM_SWEEP_INTERVAL = env.float("CRM_SWEEP_INTERVAL", default=30.0)
# How often the beat polls the enabled mailboxes (IMAP, POP3; docs/operations.md).
CRM_MAILBOX_POLL_INTERVAL = env.float("CRM_MAILBOX_POLL_INTERVAL", default=60.0)
# How long a bulk run or a delivery chunk works before it hands the rest to a new task.
CRM_TASK_SLICE_SECONDS = env.float(
    "CRM_TASK_SLICE_SECONDS", default=CELERY_TASK_SOFT_TIME_LIMIT / 5
)

# Broker transport options, per broker; CELERY_BROKER_TRANSPORT_OPTIONS (a JSON object)
# adds kombu options of the operator's own over these.
try:
    _extra_transport_options = env.json("CELERY_BROKER_TRANSPORT_OPTIONS", default={})
except ValueError as exc:
    raise ImproperlyConfigured(f"CELERY_BROKER_TRANSPORT_OPTIONS is not valid JSON: {exc}") from exc
if not isinstance(_extra_transport_options, dict):
    raise ImproperlyConfigured("CELERY_BROKER_TRANSPORT_OPTIONS must be a JSON object")
_broker_scheme = CELERY_BROKER_URL.split("://", 1)[0].split("+", 1)[0].lower()
# Redis (and SQS): a message taken and not acknowledged within the visibility timeout
# is restored to the queue and delivered again, also while its worker still holds it
# (kombu looks for such messages every ``unacked_restore_interval`` seconds). Named
# apart so that a test publishing to a Redis of its own uses the same options.
# A Redis that accepts connections and never answers (hung, failed over, a partition
# without a reset) holds every command forever unless the socket has a timeout: then a
# publish made by a request would hang it. With CRM_REDIS_SOCKET_TIMEOUT a command gives
# up, the publish fails after its retries (CELERY_TASK_PUBLISH_RETRY_POLICY, below), is
# logged, and the sweep publishes the work once the broker answers again. The same
# timeout holds for the cache when it is on Redis. Above kombu's BRPOP timeout (1 s).
CRM_REDIS_SOCKET_TIMEOUT = env.float("CRM_REDIS_SOCKET_TIMEOUT", default=3.0)
CRM_REDIS_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=3600),
    "socket_connect_timeout": CRM_REDIS_SOCKET_TIMEOUT,
    "socket_timeout": CRM_REDIS_SOCKET_TIMEOUT,
    **_extra_transport_options,
}
if _broker_scheme == "filesystem":
    # No redelivery: the folder keeps a message until a worker takes it, and a worker
    # puts back what it had not acknowledged when it stops. kombu's transport, with
    # each message written whole before a worker can see it (config/broker.py, put in
    # the place of kombu's own by config/celery.py).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,  # kombu's default waits 1 s between looks at the folder
        **_extra_transport_options,
    }
    _redelivery = None
elif _broker_scheme in ("amqp", "amqps", "pyamqp", "librabbitmq"):
    # RabbitMQ has no visibility timeout: the server's consumer timeout (rabbitmq.conf
    # ``consumer_timeout``, 30 minutes by default) closes the channel of a consumer that
    # holds a delivery unacknowledged longer, and requeues it. A queue argument or policy
    # (``x-consumer-timeout`` / ``consumer-timeout``) can change it per queue from 3.11.15
    # (for quorum queues only, says the 4.3 documentation), but Celery's queue is declared
    # without one, and declaring it with one fails on a queue that exists without. So the
    # timings stay below the server's value, which CELERY_BROKER_CONSUMER_TIMEOUT states.
    CELERY_BROKER_TRANSPORT_OPTIONS = {**_extra_transport_options}
    _redelivery = (
        "CELERY_BROKER_CONSUMER_TIMEOUT (the RabbitMQ consumer timeout)",
        env.float("CELERY_BROKER_CONSUMER_TIMEOUT", default=1800.0),
    )
elif _broker_scheme in ("redis", "rediss", "sentinel", "sqs"):
    CELERY_BROKER_TRANSPORT_OPTIONS = dict(CRM_REDIS_BROKER_TRANSPORT_OPTIONS)
    _redelivery = (
        "the visibility timeout (CELERY_BROKER_VISIBILITY_TIMEOUT)",
        float(CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]),
    )
else:  # another transport (e.g. memory://): no redelivery limit known here
    CELERY_BROKER_TRANSPORT_OPTIONS = {**_extra_transport_options}
    _redelivery = None

if not 0 < CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_TASK_SOFT_TIME_LIMIT ({CELERY_TASK_SOFT_TIME_LIMIT:g}) must be above 0 and "
        f"below CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT:g})"
    )
if not 0 < CRM_TASK_SLICE_SECONDS < CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CRM_TASK_SLICE_SECONDS ({CRM_TASK_SLICE_SECONDS:g}) must be above 0 and below "
        f"CELERY_TASK_SOFT_TIME_LIMIT ({CELERY_TASK_SOFT_TIME_LIMIT:g})"
    )
if CRM_ETA_HORIZON_SECONDS <= 0:
    raise ImproperlyConfigured(
        f"CRM_ETA_HORIZON_SECONDS ({CRM_ETA_HORIZON_SECONDS:g}) must be above 0"
    )
if _redelivery is not None:
    _limit_name, _limit = _redelivery
    _held = CRM_ETA_HORIZON_SECONDS + 2 * CELERY_TASK_TIME_LIMIT
    if _held >= _limit:
        raise ImproperlyConfigured(
            f"{_limit_name} is {_limit:g} s, but a task may stay unacknowledged for "
            f"CRM_ETA_HORIZON_SECONDS + 2 x CELERY_TASK_TIME_LIMIT = {_held:g} s and would "
            "be delivered again: lower the horizon or the time limit, or raise the timeout"
        )

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A publish that fails is retried twice, quickly, then given up (activities.dispatch
# logs it; the sweep finds the work): Celery's default waits up to a second between
# tries, and a request should not wait long for a broker that is down.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "config.celery:HeartbeatScheduler"
# Survives a Redis lost while the worker holds messages (config/celery.py).
CELERY_WORKER_CONSUMER = "config.celery:Consumer"
CELERY_BEAT_SCHEDULE = {
    "sweep-email-delivery": {
        "task": "activities.tasks.sweep_email_delivery",
        "schedule": CRM_SWEEP_INTERVAL,
    },
    "poll-mailboxes": {
        "task": "activities.tasks.poll_mailboxes",
        "schedule": CRM_MAILBOX_POLL_INTERVAL,
    },
    "collect-orphan-blobs": {
        "task": "activities.tasks.collect_orphan_blobs",
        "schedule": 3600.0,
    },
}

# --- Health (common.health) ----------------------------------------------------------
# Workers and beat touch a file here while they run; `manage.py health --kind worker`
# fails when it is older than the max age (a stuck or stopped process).
CRM_HEARTBEAT_DIR = Path(env.str("CRM_HEARTBEAT_DIR", default=str(DATA_DIR / "heartbeat")))
CRM_HEARTBEAT_SECONDS = env.int("CRM_HEARTBEAT_SECONDS", default=10)
CRM_HEARTBEAT_MAX_AGE_SECONDS = env.int("CRM_HEARTBEAT_MAX_AGE_SECONDS", default=60)
CRM_HEALTH_TIMEOUT_SECONDS = env.float("CRM_HEALTH_TIMEOUT_SECONDS", default=2.0)

# --- Application tunables (read through activities.conf getters) ----------------
CRM_LEASE_SECONDS = env.int("CRM_LEASE_SECONDS", default=300)
CRM_SEND_MAX_ATTEMPTS = env.int("CRM_SEND_MAX_ATTEMPTS", default=5)
CRM_RETRY_BACKOFF_SECONDS = env.int("CRM_RETRY_BACKOFF_SECONDS", default=30)
CRM_RETRY_BACKOFF_MAX_SECONDS = env.int("CRM_RETRY_BACKOFF_MAX_SECONDS", default=3600)
CRM_SWEEP_PENDING_AFTER_SECONDS = env.int("CRM_SWEEP_PENDING_AFTER_SECONDS", default=120)
# A received message over this size is refused with the reason; of its parts, at most
# CRM_INBOUND_MAX_PARTS are stored (the rest named in a note on the email).
CRM_INBOUND_MAX_BYTES = env.int("CRM_INBOUND_MAX_BYTES", default=40 * 1024 * 1024)
CRM_INBOUND_MAX_PARTS = env.int("CRM_INBOUND_MAX_PARTS", default=200)
# Polled mailboxes: the server's time to answer, one poll's budget (messages, bytes in
# all, a message's size as the server reports it: bigger is refused undownloaded), plain
# connections beyond loopback, a CA bundle to verify servers with (empty: the system's),
# and how long a poll holds its mailbox against a concurrent one.
CRM_MAILBOX_TIMEOUT = env.float("CRM_MAILBOX_TIMEOUT", default=30.0)
CRM_MAILBOX_MAX_MESSAGES = env.int("CRM_MAILBOX_MAX_MESSAGES", default=100)
CRM_MAILBOX_MAX_MESSAGE_BYTES = env.int(
    "CRM_MAILBOX_MAX_MESSAGE_BYTES", default=CRM_INBOUND_MAX_BYTES
)
CRM_MAILBOX_MAX_POLL_BYTES = env.int("CRM_MAILBOX_MAX_POLL_BYTES", default=200 * 1024 * 1024)
CRM_MAILBOX_ALLOW_PLAIN = env.bool("CRM_MAILBOX_ALLOW_PLAIN", default=False)
CRM_MAILBOX_CA_FILE = env.str("CRM_MAILBOX_CA_FILE", default="")
CRM_MAILBOX_LEASE_SECONDS = env.int("CRM_MAILBOX_LEASE_SECONDS", default=600)
for _name in (
    "CRM_MAILBOX_TIMEOUT",
    "CRM_MAILBOX_MAX_MESSAGES",
    "CRM_MAILBOX_MAX_MESSAGE_BYTES",
    "CRM_MAILBOX_MAX_POLL_BYTES",
    "CRM_MAILBOX_LEASE_SECONDS",
):
    if globals()[_name] <= 0:
        raise ImproperlyConfigured(f"{_name} must be positive")
if CRM_MAILBOX_CA_FILE and not Path(CRM_MAILBOX_CA_FILE).is_file():
    raise ImproperlyConfigured(f"CRM_MAILBOX_CA_FILE {CRM_MAILBOX_CA_FILE} is not a file")
# A message with more MIME parts than this (a 10,000-part one takes seconds to parse) is
# kept, answered, and read by a worker (activities.tasks.read_inbound; the sweep catches
# a lost publish) instead of in the SMTP session or the webhook request.
CRM_INBOUND_INLINE_READ_PARTS = env.int("CRM_INBOUND_INLINE_READ_PARTS", default=500)
CRM_BLOB_GC_GRACE_SECONDS = env.int("CRM_BLOB_GC_GRACE_SECONDS", default=24 * 3600)
# The budget of one template render (save, preview, instantiate, send, each bulk email):
# tag nesting, loop items, output characters, seconds; over it is a 400 naming the limit.
CRM_TEMPLATE_MAX_NESTING = env.int("CRM_TEMPLATE_MAX_NESTING", default=30)
CRM_TEMPLATE_MAX_ITERATIONS = env.int("CRM_TEMPLATE_MAX_ITERATIONS", default=10_000)
CRM_TEMPLATE_MAX_OUTPUT = env.int("CRM_TEMPLATE_MAX_OUTPUT", default=1_000_000)
CRM_TEMPLATE_MAX_SECONDS = env.float("CRM_TEMPLATE_MAX_SECONDS", default=2.0)
# Contacts a bulk job writes per transaction (and emails per delivery task).
CRM_BULK_CHUNK_SIZE = env.int("CRM_BULK_CHUNK_SIZE", default=500)

# --- Notifications to integrators (webhooks; docs/operations.md) -----------------------
# Targets on loopback, private, link-local and other non-public networks are refused
# unless this is on (bin/run and the tests turn it on; production leaves it off).
CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = env.bool("CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS", default=False)
# Seconds to wait before each try after the first; the event is abandoned after the
# last (the default: 9 tries over about 22 hours).
CRM_WEBHOOK_RETRY_SCHEDULE = env.list(
    "CRM_WEBHOOK_RETRY_SCHEDULE", cast=int, default=[30, 120, 600, 3600, 10800, 21600, 43200]
)
# Seconds to connect and to read the answer, per try.
CRM_WEBHOOK_TIMEOUT_SECONDS = env.float("CRM_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# An endpoint is disabled (with a notice to staff) after this many events in a row
# were abandoned.
CRM_WEBHOOK_DISABLE_AFTER_FAILED_EVENTS = env.int(
    "CRM_WEBHOOK_DISABLE_AFTER_FAILED_EVENTS", default=5
)
if any(seconds < 0 for seconds in CRM_WEBHOOK_RETRY_SCHEDULE):
    raise ImproperlyConfigured("CRM_WEBHOOK_RETRY_SCHEDULE must list seconds of 0 or more")
if not 0 < CRM_WEBHOOK_TIMEOUT_SECONDS <= 60:
    raise ImproperlyConfigured("CRM_WEBHOOK_TIMEOUT_SECONDS must be above 0 and at most 60")
if CRM_WEBHOOK_DISABLE_AFTER_FAILED_EVENTS < 1:
    raise ImproperlyConfigured("CRM_WEBHOOK_DISABLE_AFTER_FAILED_EVENTS must be 1 or more")

# --- Cache (API throttling counters, sign-in attempts) -----------------------------
# Shared by every web process, so that a limit is one limit and not one per process:
# CACHE_URL, else the broker's Redis when the broker is Redis, else (the embedded
# setup, one machine) memory of the process.
_redis_broker = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""
CACHES = {"default": env.cache_url("CACHE_URL", default=_redis_broker or "locmemcache://")}
# Redis' connection pool options for the cache: a hung Redis costs a request at most the
# timeout (the API's throttles then let the request through, common.api.throttling).
# Options given in CACHE_URL's query win.
CRM_REDIS_CACHE_OPTIONS = {
    "socket_connect_timeout": CRM_REDIS_SOCKET_TIMEOUT,
    "socket_timeout": CRM_REDIS_SOCKET_TIMEOUT,
}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["OPTIONS"] = {
        **CRM_REDIS_CACHE_OPTIONS,
        **CACHES["default"].get("OPTIONS", {}),
    }
CACHES["default"].setdefault("KEY_PREFIX", "crm")

# --- REST API -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "common.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "common.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "common.api.throttling.AnonRateThrottle",
        "common.api.throttling.UserRateThrottle",
    ],
    "EXCEPTION_HANDLER": "common.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "common.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# Throttle rates ("N/second|minute|hour|day"; empty = no limit), read per request.
CRM_API_THROTTLE_ANON = env.str("CRM_API_THROTTLE_ANON", default="60/minute")
CRM_API_THROTTLE_USER = env.str("CRM_API_THROTTLE_USER", default="6000/minute")
CRM_API_THROTTLE_LOGIN = env.str("CRM_API_THROTTLE_LOGIN", default="10/minute")
# How deep a JSON body may nest (deeper: a 400, common.api.parsers).
CRM_API_MAX_JSON_DEPTH = env.int("CRM_API_MAX_JSON_DEPTH", default=32)
# How long a stored answer to an Idempotency-Key is kept.
CRM_IDEMPOTENCY_TTL_SECONDS = env.int("CRM_IDEMPOTENCY_TTL_SECONDS", default=24 * 3600)

SPECTACULAR_SETTINGS = {
    "TITLE": "CRM email activity API",
    "DESCRIPTION": "Send, track and claim email; approve sender addresses. See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Dataverse's keys in parentheses, emails({guid}), not read as a regex group.
    "PREPROCESSING_HOOKS": ["compat.dynamics.schema.odata_key_paths"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.api.serializers.no_additional_properties",
    ],
    "ENUM_NAME_OVERRIDES": {
        "EmailStatusEnum": "activities.models.email.EmailStatus",
        "EmailApprovalEnum": "crm.models.EmailApproval",
    },
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "mail"
LOGOUT_REDIRECT_URL = "login"

# Every process kind logs one line per event to standard error, with the request id,
# task id and email id (common.logging); LOG_FORMAT=json for a log collector.
LOGGING = logging_config(
    level=env.str("LOG_LEVEL", default="INFO"), fmt=env.str("LOG_FORMAT", default="plain")
)
# The request id: X-Request-ID from the proxy when it sets one (a UUID), made otherwise,
# answered in the response and carried into the tasks the request publishes.
DJANGO_GUID = {
    "GUID_HEADER_NAME": "X-Request-ID",
    "VALIDATE_GUID": True,
    "RETURN_HEADER": True,
    "EXPOSE_HEADER": True,
    "INTEGRATIONS": [CeleryIntegration(use_django_logging=True, log_parent=False)],
}
# Workers log through LOGGING above, not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
