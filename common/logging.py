"""Log records that a collector can join up: each carries the request id, the task id and
the email id it concerns, as one line of text or, with ``LOG_FORMAT=json``, of JSON.

The request id comes from django-guid (``X-Request-ID``: taken from the request when a
proxy set one, made otherwise, returned in the response and handed on to the tasks the
request publishes); the task id from Celery's current task; the email id from the
record's ``extra`` (``logger.info(..., extra={"email_id": 42})``).
"""

from __future__ import annotations

import logging

from celery import current_task
from django_guid import get_guid

#: The fields every record carries, in the order the plain format shows them.
CONTEXT_FIELDS = ("request_id", "task_id", "email_id")

PLAIN_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s "
    "[request=%(request_id)s task=%(task_id)s email=%(email_id)s] %(message)s"
)
JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s " + " ".join(
    f"%({field})s" for field in CONTEXT_FIELDS
)


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``task_id`` and ``email_id`` to every record ("-" when none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = get_guid() or "-"
        if not getattr(record, "task_id", None):
            task = current_task
            record.task_id = (task.request.id if task else None) or "-"
        if getattr(record, "email_id", None) is None:
            record.email_id = "-"
        return True


def logging_config(*, level: str, fmt: str) -> dict:
    """Django's LOGGING for every process kind: to standard error, one line a record."""
    if fmt not in ("plain", "json"):
        raise ValueError(f"LOG_FORMAT must be 'plain' or 'json', not {fmt!r}")
    formatter = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": JSON_FORMAT,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
        if fmt == "json"
        else {"format": PLAIN_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "common.logging.ContextFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            # One line per request comes from gunicorn's access log.
            "django_guid": {"level": "WARNING"},
            # aiosmtpd (manage.py receive_mail) logs every SMTP command and address of
            # every session at INFO; the listener logs what it stores or refuses itself.
            "mail.log": {"level": "WARNING"},
        },
    }
