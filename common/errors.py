"""The application's errors: one base with a stable ``code`` per cause.

The DRF exception handler, the admin and the web views all show ``message``; the API
maps ``http_status``. ``field``, when known, names the input the refusal is about
("to", "subject", "sender"), so a page shows it next to that field without reading
the message.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    code = "error"
    http_status = 400
    field: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        field: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if field:
            self.field = field
        self.extra = extra or {}

    def __str__(self) -> str:
        return self.message


class ValidationFailed(ApplicationError):
    code = "invalid"


class PermissionDeniedError(ApplicationError):
    code = "permission_denied"
    http_status = 403


class InvalidTransition(ApplicationError):
    """The current status forbids the action (HTTP 409)."""

    code = "invalid_status"
    http_status = 409

    def __init__(self, message: str, *, status: str, code: str | None = None):
        super().__init__(message, code=code, extra={"status": status})
        self.status = status


class Conflict(ApplicationError):
    code = "conflict"
    http_status = 409
