"""``suppressions/``: the suppression list, addresses no bulk job writes to (staff only).

Adding and removing are one service call each (``services.suppression``), which
normalises the address and refuses a second listing of it (409).
"""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from common.api.filters import NamedSearchFilter, StableOrderingFilter, StrictFilterBackend
from common.api.idempotency import idempotent
from common.api.parsers import JSONParser
from common.api.permissions import StaffOnly
from common.api.schema import IDEMPOTENCY_KEY, IDEMPOTENT, LOOKUP_ANY, errors
from common.api.serializers import StrictModelSerializer
from crm.models import User

from ..addresses import MAX_ADDRESS_LENGTH
from ..models import SuppressedAddress, SuppressionReason
from ..services.suppression import suppression_add, suppression_remove


@extend_schema_field(
    {"type": "string", "format": "email", "minLength": 1, "maxLength": MAX_ADDRESS_LENGTH}
)
class EmailAddressField(serializers.CharField):
    """An address, checked by the service (``invalid_address``); the schema says what
    it takes."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_ADDRESS_LENGTH)
        super().__init__(**kwargs)


ENTRY_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="the entry's id")


class SuppressedAddressSerializer(StrictModelSerializer):
    address = EmailAddressField(trim_whitespace=False, help_text="stored lower-cased")
    reason = serializers.ChoiceField(
        choices=SuppressionReason.choices, default=SuppressionReason.MANUAL
    )
    created_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = SuppressedAddress
        fields = ["id", "address", "reason", "note", "created_by", "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]


class SuppressionFilter(filters.FilterSet):
    reason = filters.ChoiceFilter(choices=SuppressionReason.choices)

    class Meta:
        model = SuppressedAddress
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(
        summary="The suppression list (staff)",
        parameters=[OpenApiParameter("search", str, description="part of the address or note")],
        responses={200: SuppressedAddressSerializer(many=True), **errors(400, 403, 404)},
    ),
    retrieve=extend_schema(
        summary="One suppressed address (staff)",
        parameters=[ENTRY_ID],
        responses={200: SuppressedAddressSerializer, **errors(403, 404)},
    ),
    create=extend_schema(
        summary="Suppress an address for bulk mail (staff)",
        description="Bulk jobs skip every contact with this address (any case), counted "
        "as `suppressed`. A second listing of the same address is a 409.",
        parameters=[IDEMPOTENCY_KEY],
        responses={201: SuppressedAddressSerializer, **errors(*IDEMPOTENT, 403, 415)},
    ),
    destroy=extend_schema(
        summary="Take an address off the suppression list (staff)",
        parameters=[ENTRY_ID],
        responses={204: None, **errors(403, 404)},
    ),
)
class SuppressionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    lookup_value_regex = LOOKUP_ANY
    queryset = SuppressedAddress.objects.select_related("created_by")
    serializer_class = SuppressedAddressSerializer
    permission_classes = [IsAuthenticated, StaffOnly]
    parser_classes = [JSONParser]
    filter_backends = [StrictFilterBackend, NamedSearchFilter, StableOrderingFilter]
    filterset_class = SuppressionFilter
    search_fields = ["address", "note"]
    ordering_fields = ["id", "address", "created_at"]
    ordering = ["address"]

    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        entry = suppression_add(**serializer.validated_data, actor=request.user)
        return Response(
            self.get_serializer(self.get_queryset().get(pk=entry.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    def destroy(self, request, *args, **kwargs):
        suppression_remove(entry=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def register(router: DefaultRouter) -> None:
    router.register("suppressions", SuppressionViewSet, basename="suppression")
