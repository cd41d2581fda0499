"""What every vendor adapter shares: our refusals in the vendor's error shape.

A vendor view sets ``error_shape``, a function of (HTTP status, our stable code, our
message) to the vendor's JSON body. Every error goes through the project's one
exception handler first (``common.api.exceptions``), so the status and the message
are those of ``/api/v1/``; only the body's shape changes. Anything that handler
does not answer stays a 500 (a bug), as in ``/api/v1/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.response import Response
from rest_framework.views import APIView

from common.api.exceptions import exception_handler

ErrorShape = Callable[[int, str, str], dict[str, Any]]


def _message_of(data: Any) -> str:
    """One sentence from an error body of ours (``detail``, or field errors)."""
    if isinstance(data, dict):
        if "detail" in data:
            return str(data["detail"])
        parts = []
        for key, value in data.items():
            if key == "code":
                continue
            parts.append(f"{key}: {_message_of(value)}")
        return "; ".join(parts)
    if isinstance(data, list):
        return " ".join(_message_of(item) for item in data)
    return str(data)


def _code_of(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("code"), str):
        return data["code"]
    return "invalid"


def vendor_error_response(shape: ErrorShape, response: Response) -> Response:
    """``response`` (an error answer of ours) with its body in the vendor's shape."""
    body = shape(response.status_code, _code_of(response.data), _message_of(response.data))
    reshaped = Response(body, status=response.status_code)
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in response:
            reshaped[header] = response[header]
    return reshaped


class VendorAPIView(APIView):
    """An API view that answers its errors in ``error_shape``."""

    error_shape: ErrorShape

    def get_exception_handler(self):
        shape = type(self).error_shape

        def handler(exc, context):
            response = exception_handler(exc, context)
            if response is None:
                return None
            return vendor_error_response(shape, response)

        return handler
