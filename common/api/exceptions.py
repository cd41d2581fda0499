"""The one place where errors become API responses.

Domain errors (``ApplicationError``) answer with their HTTP status, ``detail`` and a
stable ``code``; a forbidden transition (409) also carries the current ``status``.
Django's own validation and permission errors map to 400 and 403, a delete refused by
``on_delete=PROTECT`` to 409, a record that vanished mid-request to 404. Anything else is a bug and stays a 500.
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from common.errors import ApplicationError


def application_error_response(exc: ApplicationError) -> Response:
    body = {"detail": exc.message, "code": exc.code}
    for key, value in exc.extra.items():
        if key != "errors":
            body[key] = value
    if "errors" in exc.extra:
        body["errors"] = exc.extra["errors"]
    return Response(body, status=exc.http_status)


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return application_error_response(exc)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return Response(exc.message_dict, status=status.HTTP_400_BAD_REQUEST)
        body = {"detail": " ".join(exc.messages), "code": "invalid"}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ProtectedError | RestrictedError):
        # A delete that other records still need: a conflict, not a server error.
        body = {"detail": f"still referenced by other records: {exc.args[0]}", "code": "protected"}
        return Response(body, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404 | ObjectDoesNotExist):
        # Also a record deleted by another request between the lookup and the service.
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        data = response.data
        if isinstance(data, dict) and "detail" in data and "code" not in data:
            codes = exc.get_codes()
            if isinstance(codes, str):
                data["code"] = codes
    return response
