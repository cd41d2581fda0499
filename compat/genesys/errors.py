"""Refusals in Genesys' words, and the adapter's own causes.

The body carries both error shapes a Genesys client reads: the Web Services API's
``statusCode`` and ``statusMessage`` (its "Return Values": a non-zero code names the
kind of failure), and the Genesys Cloud error body (``message``, ``code``, ``status``,
``messageParams``, ``contextId``, ``details``, ``errors``). ``code`` is our stable code.
"""

from __future__ import annotations

import uuid
from typing import Any

from common.errors import ApplicationError

# Web Services' statusCode values (Return Values page).
MISSING_PARAMETER = 1
INVALID_FOR_STATE = 2
FORBIDDEN = 3
INTERNAL_ERROR = 4
NO_PERMISSION = 5
NOT_FOUND = 6
INPUT_VALIDATION = 10
NOT_AUTHENTICATED = 20


class MissingParameter(ApplicationError):
    code = "missing_parameter"


class InvalidParameter(ApplicationError):
    code = "invalid_parameter"


class UnknownQueue(ApplicationError):
    code = "unknown_queue"


class UnsupportedOperation(ApplicationError):
    code = "unsupported_operation"


def status_code_of(http_status: int, code: str) -> int:
    if code == MissingParameter.code:
        return MISSING_PARAMETER
    if code == UnknownQueue.code or http_status == 404:
        return NOT_FOUND
    if http_status == 401:
        return NOT_AUTHENTICATED
    if http_status == 403:
        return NO_PERMISSION
    if http_status == 409:
        return INVALID_FOR_STATE
    if code == UnsupportedOperation.code or http_status in (405, 429):
        return FORBIDDEN
    if http_status >= 500:
        return INTERNAL_ERROR
    return INPUT_VALIDATION


def genesys_error(http_status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "statusCode": status_code_of(http_status, code),
        "statusMessage": message,
        "message": message,
        "code": code,
        "status": http_status,
        "messageParams": {},
        "contextId": str(uuid.uuid4()),
        "details": [],
        "errors": [],
    }
