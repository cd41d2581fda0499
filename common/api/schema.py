"""The OpenAPI schema of the error bodies, and the ``responses`` that document them.

The one place for both: every endpoint documents its refusals with ``errors()``. Only
for the schema; the bodies themselves are written by ``common.api.exceptions``:
``{"detail": str, "code": str, ...}``, where a 409 for a refused transition adds
``status`` and a template error adds ``line``, and a 400 may instead be field errors
``{"field": ["message"]}``.

    @extend_schema(responses={200: EmailSerializer, **errors(400, 403, 404, 409)})
"""

from __future__ import annotations

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from .idempotency import HEADER, KEY_MAX_LENGTH, KEY_PATTERN

__all__ = [
    "ERROR_DESCRIPTIONS",
    "IDEMPOTENCY_KEY",
    "LOOKUP_ANY",
    "STATUS_NAMES",
    "TEMPLATE_ERROR",
    "ConflictErrorSerializer",
    "ErrorSerializer",
    "TemplateErrorSerializer",
    "errors",
]

# A detail route's lookup pattern: any path segment (also "1.5" or "abc") reaches the
# view and gets a JSON 404, rather than the router's HTML 404 for a path it does not
# match. The schema still declares the id's own type.
LOOKUP_ANY = r"[^/]+"


# --- the bodies ------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """A refusal: what went wrong, and a stable code to branch on."""

    detail = serializers.CharField(help_text="what went wrong, naming the cause")
    code = serializers.CharField(
        help_text="a stable code, e.g. not_found, permission_denied, sender_not_allowed"
    )


class ConflictErrorSerializer(ErrorSerializer):
    """A 409: the current state forbids it."""

    status = serializers.CharField(
        required=False,
        help_text="the email's current status, when its status forbids the action",
    )


class TemplateErrorSerializer(serializers.Serializer):
    """A 400 of a template: a template error naming the line, or field errors instead."""

    detail = serializers.CharField(required=False, help_text="what went wrong")
    code = serializers.CharField(required=False, help_text="template_error for a template error")
    line = serializers.IntegerField(
        required=False, help_text="for code template_error: the line of the template part"
    )


# --- the responses ---------------------------------------------------------------------

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: 'invalid input: {"field": ["message"]}, or {"detail", "code"} naming the cause',
    401: "not signed in: no token, or an invalid one",
    403: "not allowed: detail and code name what is missing (e.g. permission_denied, "
    "sender_not_allowed; for a session, also the CSRF token)",
    404: "no such record, or not one you may see (for a list: no such page)",
    409: "the current state forbids it; a refused transition also names the email's current status",
    413: "the request body is over the limit",
    415: "unsupported media type",
    422: "this Idempotency-Key was already used for a different request",
    429: "too many requests (throttled)",
    501: "not implemented yet",
}

# The keyword that overrides a status in ``errors()``: RFC 9110's name for it.
STATUS_NAMES: dict[str, int] = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "content_too_large": 413,
    "unsupported_media_type": 415,
    "unprocessable_content": 422,
    "too_many_requests": 429,
    "not_implemented": 501,
}

# Always documented unless overridden with None: any endpoint may answer them.
DEFAULT_STATUSES = (401, 429)

TEMPLATE_ERROR = OpenApiResponse(
    TemplateErrorSerializer,
    description=(
        "invalid input, or a template error naming the part and the line: "
        '{"detail": "template error in HTML body, line 3: ...", "code": "template_error", '
        '"line": 3}'
    ),
)


def _default(status: int, description: str | None = None) -> OpenApiResponse:
    body: OpenApiTypes | type[serializers.Serializer]
    if status == 400:
        body = OpenApiTypes.OBJECT  # field errors, or detail and code
    elif status == 409:
        body = ConflictErrorSerializer
    else:
        body = ErrorSerializer
    return OpenApiResponse(body, description=description or ERROR_DESCRIPTIONS[status])


def errors(*statuses: int, **overrides: str | OpenApiResponse | None) -> dict[int, OpenApiResponse]:
    """Schema responses for the given error statuses, plus 401 and 429.

    An override, named after its status (``STATUS_NAMES``: ``forbidden=``,
    ``conflict=``, ...), changes how a documented status is shown: a string replaces the
    description, an ``OpenApiResponse`` the whole response, and ``None`` leaves the
    status out (``too_many_requests=None``). It never adds a status: overrides for
    statuses not documented here are ignored, so one dict of a module's descriptions
    can serve all its operations.
    """
    unknown = sorted(set(overrides) - set(STATUS_NAMES))
    if unknown:
        raise TypeError(f"errors() got unknown status names: {', '.join(unknown)}")
    by_status = {STATUS_NAMES[name]: value for name, value in overrides.items()}
    answers = {}
    for status in sorted({*statuses, *DEFAULT_STATUSES}):
        if status not in ERROR_DESCRIPTIONS:
            raise ValueError(f"errors(): no description for status {status}")
        override = by_status.get(status, "")
        if override is None:
            continue
        if isinstance(override, OpenApiResponse):
            answers[status] = override
        else:
            answers[status] = _default(status, override)
    return answers


# What an ``@idempotent`` action may answer: a bad key (400), the same key still in
# progress or failed (409), the same key with another body (422).
IDEMPOTENT = (400, 409, 422)


# The header of every ``@idempotent`` POST, as ``common.api.idempotency`` checks it.
IDEMPOTENCY_KEY = OpenApiParameter(
    HEADER,
    {"type": "string", "minLength": 1, "maxLength": KEY_MAX_LENGTH, "pattern": KEY_PATTERN},
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "repeat the request with the same key and body to get the first answer again "
        f"(1 to {KEY_MAX_LENGTH} visible ASCII characters, spaces inside only); the same "
        "key with another body is a 422"
    ),
)


# --- text fields -----------------------------------------------------------------------


class TrimmedTextExtension(OpenApiSerializerFieldExtension):
    """A text field that trims its input and may not be blank refuses text made of
    whitespace only (``"  "`` is blank once trimmed): its request schema says so with a
    pattern (Python's ``\\S``, which is what ``str.strip`` keeps), beside ``minLength``."""

    target_class = "rest_framework.fields.CharField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        field = self.target
        if (
            direction == "request"
            and getattr(field, "trim_whitespace", False)
            and not getattr(field, "allow_blank", True)
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum"} & set(schema)
        ):
            schema["pattern"] = r"\S"
        return schema


class ListBoundsExtension(OpenApiSerializerFieldExtension):
    """A list of nested records (``many=True``): ``minItems`` for ``allow_empty=False``
    and ``maxItems`` for ``max_length``, which drf-spectacular leaves out."""

    target_class = "rest_framework.serializers.ListSerializer"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        field = self.target
        if direction == "request" and isinstance(schema, dict) and schema.get("type") == "array":
            if not field.allow_empty:
                schema["minItems"] = max(schema.get("minItems", 0), 1)
            if field.max_length is not None:
                schema["maxItems"] = field.max_length
            if field.min_length is not None:
                schema["minItems"] = max(schema.get("minItems", 0), field.min_length)
        return schema


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer <token>``: the same tokens as ``Token <token>``."""

    target_class = "common.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The token of auth/token/, as Microsoft's and Genesys' clients send it",
        }
