"""Graph's error shape, and our refusals under Graph's codes.

Every error answer is ``{"error": {"code", "message", "innerError"}}``
(learn.microsoft.com/graph/errors) with the HTTP status of ``/api/v1/``: ``code`` is
the Graph code a client tests for (``ErrorInvalidRecipients``, ``ErrorSendAsDenied``,
``ErrorItemNotFound``, ...), ``message`` our refusal in words, and ``innerError.code``
our own stable code (``invalid_address``, ``sender_not_approved``, ...).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone

from common.errors import ApplicationError

# Our stable codes (common.errors, activities.errors, DRF's) under Graph's names.
GRAPH_CODES: dict[str, str] = {
    "invalid_address": "ErrorInvalidRecipients",
    "no_recipients": "ErrorInvalidRecipients",
    "recipient_suppressed": "ErrorInvalidRecipients",
    "sender_not_allowed": "ErrorSendAsDenied",
    "sender_not_approved": "ErrorSendAsDenied",
    "not_found": "ErrorItemNotFound",
    "attachment_too_large": "ErrorMessageSizeExceeded",
    "request_too_large": "ErrorMessageSizeExceeded",
    "not_authenticated": "InvalidAuthenticationToken",
    "authentication_failed": "InvalidAuthenticationToken",
    "permission_denied": "ErrorAccessDenied",
    "throttled": "TooManyRequests",
    "parse_error": "BadRequest",
}

# Where no code above applies: Graph's for the status (learn.microsoft.com/graph/errors).
STATUS_CODES: dict[int, str] = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "ErrorAccessDenied",
    404: "ErrorItemNotFound",
    405: "invalidRequest",
    409: "notAllowed",
    413: "ErrorMessageSizeExceeded",
    415: "invalidRequest",
    429: "TooManyRequests",
}


class GraphError(ApplicationError):
    """A refusal the adapter itself makes, already under its Graph code."""

    code = "BadRequest"

    def __init__(self, message: str, *, code: str | None = None, status: int = 400):
        super().__init__(message, code=code)
        self.http_status = status


def _is_graph_code(code: str) -> bool:
    return code[:1].isupper()


def graph_error(status: int, code: str, message: str) -> dict[str, Any]:
    """``compat.base``'s error shape for Graph."""
    if _is_graph_code(code):
        graph_code, ours = code, None
    else:
        graph_code = GRAPH_CODES.get(code) or STATUS_CODES.get(status, "generalException")
        ours = code
    if status == 401 and message == "Authentication credentials were not provided.":
        message = f"Access token is empty. ({message})"
    inner: dict[str, Any] = {
        "date": timezone.now().strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": str(uuid.uuid4()),
    }
    if ours is not None:
        inner["code"] = ours
    return {"error": {"code": graph_code, "message": message, "innerError": inner}}
