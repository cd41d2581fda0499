"""Schemas of the error bodies that the exception handler writes (``crm.api.exceptions``).

Only for the OpenAPI schema: the handler builds the bodies. Named ``Problem*`` so that
they describe every refusal of the template, attachment and bulk endpoints.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ProblemSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="what went wrong, naming the cause")
    code = serializers.CharField(help_text="a stable code, e.g. not_found, attachment_too_large")


class TemplateProblemSerializer(serializers.Serializer):
    """A 400 of the template endpoints: a template error, or field errors instead."""

    detail = serializers.CharField(required=False, help_text="what went wrong")
    code = serializers.CharField(required=False, help_text="template_error for a template error")
    line = serializers.IntegerField(
        required=False, help_text="for code template_error: the line of the template part"
    )


class ConflictProblemSerializer(ProblemSerializer):
    status = serializers.CharField(help_text="the email's current status")


def problem(description: str, serializer=ProblemSerializer) -> OpenApiResponse:
    return OpenApiResponse(serializer, description=description)


# Any id that is not a number reaches the view and gets a JSON 404, rather than the
# router's HTML 404 for a path it does not match.
LOOKUP_ANY = r"[^/]+"

# 400 bodies are either ``{"field": ["message"]}`` or ``{"detail", "code", ...}``.
BAD_REQUEST = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description='invalid input: {"field": ["message"]} or {"detail": "...", "code": "..."}',
)
UNAUTHORIZED = problem("not signed in: no or an invalid token")
NOT_FOUND = problem("no such object, or not visible to you")
NO_PAGE = problem("no such page of the list")
