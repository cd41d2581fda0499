"""``bulk-sends/``: reserved for bulk email; answers 501 until bulk sending is built.

The paths and the request are those of API.md, so integrators can see what is coming;
every call by a signed-in user answers ``501 {"detail": "bulk sending is not yet
available", "code": "not_implemented"}`` and changes nothing.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from crm.api.schema import LOOKUP_ANY, errors

from .fields import RecordRefField

# Every call answers 501 for now; documented without 429.
ERRORS = {
    "not_implemented": "not_implemented: bulk sending is not yet available",
}
BODY = {"detail": "bulk sending is not yet available", "code": "not_implemented"}
ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="the bulk job")


class BulkSendQuerySerializer(serializers.Serializer):
    account = serializers.IntegerField(required=False)
    city = serializers.CharField(required=False)
    tag = serializers.CharField(required=False)
    created_after = serializers.DateField(required=False)


class BulkSendSerializer(serializers.Serializer):
    """The planned request (API.md); not read yet."""

    template = serializers.IntegerField()
    sender = RecordRefField(types=("user", "queue"))
    query = BulkSendQuerySerializer()
    regarding = RecordRefField(required=False, allow_null=True)


@extend_schema_view(
    create=extend_schema(
        summary="Start a bulk send (not yet available)",
        description='Planned: 202 `{"id", "status": "queued"}`. For now: 501.',
        request=BulkSendSerializer,
        responses=errors(501, **ERRORS),
    ),
    retrieve=extend_schema(
        summary="Progress of a bulk send (not yet available)",
        description="Planned: id, status, total, created, sent, failed, skipped, "
        "started_at, finished_at. For now: 501.",
        parameters=[ID],
        responses=errors(404, 501, **ERRORS),
    ),
    cancel=extend_schema(
        summary="Cancel a bulk send (not yet available)",
        parameters=[ID],
        request=None,
        responses=errors(404, 501, **ERRORS),
    ),
)
class BulkSendViewSet(viewsets.ViewSet):
    lookup_value_regex = LOOKUP_ANY

    def _not_yet(self, pk: str | None = None) -> Response:
        if pk is not None and not (pk.isascii() and pk.isdigit()):
            raise exceptions.NotFound(f"there is no bulk send {pk!r}")
        return Response(BODY, status=status.HTTP_501_NOT_IMPLEMENTED)

    def create(self, request):
        return self._not_yet()

    def retrieve(self, request, pk=None):
        return self._not_yet(pk)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._not_yet(pk)


def register(router: DefaultRouter) -> None:
    router.register("bulk-sends", BulkSendViewSet, basename="bulk-send")
