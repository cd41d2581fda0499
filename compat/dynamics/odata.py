"""What every Dynamics 365 Web API view shares: the OData error body, its codes, the
view base, the OData headers and ``@odata.bind`` references.

Dataverse answers every error as ``{"error": {"code": "0x...", "message": "..."}}``.
The status and the message are ours (those of ``/api/v1/``, through our one exception
handler); the code is the Dataverse error code of the same cause where its reference
("Web service error codes", "Troubleshoot Dataverse Web API client errors") has one,
else ``0x80040203`` (InvalidArgument) for a 4xx. docs/compat/dynamics.md lists them.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from activities.errors import AttachmentTooLarge
from common.api.parsers import JSONParser
from common.errors import ApplicationError
from compat.base import VendorAPIView

from .ids import guid_of, pk_of

ODATA_VERSION = "4.0"
SERVICE_ROOT = "/api/data/v9.2/"

# Dataverse's codes (hex, as the Web API writes them).
OBJECT_DOES_NOT_EXIST = "0x80040217"  # a record that is not there (or not visible)
RESOURCE_NOT_FOUND_FOR_SEGMENT = "0x8006088a"  # an entity set, action or function unknown
QUERY_OR_PROPERTY_ERROR = "0x0"  # "Could not find a property named ..." ($select, $filter)
INVALID_ARGUMENT = "0x80040203"  # a value refused
PAYLOAD_ERROR = "0x80048d19"  # "Error identified in Payload provided by the user"
ACCESS_DENIED = "0x80048405"  # "Access is denied."
PRIVILEGE_DENIED = "0x80040220"  # a privilege the caller lacks
AUTHENTICATION_REQUIRED = "0x8005f101"  # "The requested resource requires authentication."
ATTACHMENT_REFUSED = "0x80044a02"  # "The attachment is either not a valid type or is too large."
CONCURRENCY_VERSION_MISMATCH = "0x80060882"  # 412: If-Match did not match
REQUEST_LIMIT_EXCEEDED = "0x80072322"  # 429: "Number of requests exceeded the limit"

# Our stable codes (common.errors, activities.errors, DRF's) to Dataverse's.
_CODE_OF_OURS = {
    "not_found": OBJECT_DOES_NOT_EXIST,
    "odata_unknown_segment": RESOURCE_NOT_FOUND_FOR_SEGMENT,
    "odata_query": QUERY_OR_PROPERTY_ERROR,
    "odata_unknown_property": QUERY_OR_PROPERTY_ERROR,
    "parse_error": PAYLOAD_ERROR,
    "odata_payload": PAYLOAD_ERROR,
    "permission_denied": PRIVILEGE_DENIED,
    "sender_not_allowed": PRIVILEGE_DENIED,
    "not_authenticated": AUTHENTICATION_REQUIRED,
    "authentication_failed": AUTHENTICATION_REQUIRED,
    "attachment_too_large": ATTACHMENT_REFUSED,
    "attachment_empty": ATTACHMENT_REFUSED,
    "precondition_failed": CONCURRENCY_VERSION_MISMATCH,
    "throttled": REQUEST_LIMIT_EXCEEDED,
}
_CODE_OF_STATUS = {
    401: AUTHENTICATION_REQUIRED,
    403: ACCESS_DENIED,
    404: OBJECT_DOES_NOT_EXIST,
    412: CONCURRENCY_VERSION_MISMATCH,
    413: ATTACHMENT_REFUSED,
    429: REQUEST_LIMIT_EXCEEDED,
}


def dataverse_code(http_status: int, code: str) -> str:
    """The Dataverse error code for one of our refusals."""
    if code in _CODE_OF_OURS:
        return _CODE_OF_OURS[code]
    return _CODE_OF_STATUS.get(http_status, INVALID_ARGUMENT)


def odata_error(http_status: int, code: str, message: str) -> dict[str, Any]:
    """The OData error body (``compat.base.ErrorShape``)."""
    return {"error": {"code": dataverse_code(http_status, code), "message": message}}


class ODataError(ApplicationError):
    """A request the adapter cannot map: its message names the part refused."""

    code = "odata_query"


class UnknownProperty(ODataError):
    code = "odata_unknown_property"

    def __init__(self, name: str, entity: str):
        super().__init__(
            f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{entity}'."
        )


class PayloadError(ODataError):
    """A body of the wrong shape or type (Dataverse's 0x80048d19)."""

    code = "odata_payload"


class PreconditionFailed(ApplicationError):
    code = "precondition_failed"
    http_status = 412


class RecordNotFound(ApplicationError):
    """A record that is not there or that the caller may not see (as ``/api/v1/``, 404)."""

    code = "not_found"
    http_status = 404


class DynamicsView(VendorAPIView):
    """The base of every ``/api/data/v9.2/`` view: OData errors and headers, JSON only."""

    error_shape = staticmethod(odata_error)
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.check_input(request)

    def check_input(self, request: Request) -> None:
        """Checks of every request once it is authenticated, before the body is used."""
        # NUL is refused in every text, as DRF's fields do for /api/v1/: PostgreSQL
        # cannot store it.
        if any("\x00" in key or "\x00" in value for key, value in request.query_params.items()):
            raise PayloadError("the query string holds a NUL character (U+0000)")
        if request.method in ("POST", "PATCH", "PUT") and _holds_nul(request.data):
            raise PayloadError("the body holds a NUL character (U+0000) in a text")

    def handle_exception(self, exc):
        # Our 404s keep their message (which GUID, which set); Django's handler drops it.
        if isinstance(exc, Http404):
            exc = RecordNotFound(str(exc) or "the record does not exist")
        elif isinstance(exc, RequestDataTooBig):
            exc = AttachmentTooLarge(
                "the request body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE allows"
            )
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["OData-Version"] = ODATA_VERSION
        return response


def _holds_nul(data: Any) -> bool:
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def resource_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any path under the service root that names nothing (Dataverse's 0x8006088a)."""
    segment = request.path.removeprefix(SERVICE_ROOT).split("/")[0].split("(")[0]
    body = {
        "error": {
            "code": RESOURCE_NOT_FOUND_FOR_SEGMENT,
            "message": f"Resource not found for the segment '{segment}'.",
        }
    }
    response = JsonResponse(body, status=404)
    response["OData-Version"] = ODATA_VERSION
    return response


# --- record references --------------------------------------------------------------

_BIND = re.compile(r"^(?:.*/)?(?P<set>[A-Za-z_]\w*)\((?P<key>[^()]*)\)$")


def parse_bind(value: Any, *, prop: str) -> tuple[str, int]:
    """The entity set and our key of an ``@odata.bind`` value: ``/contacts(<guid>)``,
    ``contacts(<guid>)`` or the absolute URL. A malformed one is a 400 naming ``prop``;
    a GUID of no record of ours is a 404 (as Dataverse answers)."""
    if not isinstance(value, str) or not (match := _BIND.match(value.strip())):
        raise PayloadError(f"{prop}: {value!r} is not a record reference such as /contacts(<guid>)")
    return match["set"], pk_of(match["key"])


def entity_url(request: Request, entity_set: str, pk: int) -> str:
    """The absolute URL of one record (``OData-EntityId``, ``@odata.id``)."""
    return request.build_absolute_uri(f"{SERVICE_ROOT}{entity_set}({guid_of(pk)})")


def context_url(request: Request, fragment: str) -> str:
    """``@odata.context``: the service's ``$metadata#<fragment>``."""
    return request.build_absolute_uri(f"{SERVICE_ROOT}$metadata#{fragment}")


def prefers(request: Request, preference: str) -> str | None:
    """The value of one ``Prefer`` preference (``return``, ``odata.maxpagesize``), or ``None``."""
    for header in request.headers.get("Prefer", "").split(","):
        name, _, value = header.strip().partition("=")
        if name.strip().lower() == preference.lower():
            return value.strip().strip('"') or ""
    return None


def no_content(request: Request, entity_set: str, pk: int) -> Response:
    """204 with ``OData-EntityId`` (a create or update without ``return=representation``)."""
    response = Response(status=204)
    response["OData-EntityId"] = entity_url(request, entity_set, pk)
    return response


def action_parameters(
    request: Request, *, known: set[str] | frozenset[str], action: str = "this action"
) -> dict[str, Any]:
    """An action's parameters: a JSON object (none at all: every one at its default)
    naming only ``known`` ones (``@odata.*`` annotations aside); else a 400 naming the
    first it does not take."""
    body: Any = request.data
    if not isinstance(body, dict):
        raise PayloadError("the parameters must be a JSON object")
    for name in body:
        if name not in known and not name.startswith("@odata."):
            raise PayloadError(
                f"'{name}' is not a parameter of {action} (parameters: {', '.join(sorted(known))})"
            )
    return body
