"""``webhooks/``: integrators' endpoints (staff only), their log, a test event.

Thin views: each change is one call to ``services.webhooks``, whose refusals (a target
the SSRF guard refuses, an unknown event type) become 400s naming the cause.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from common.api.filters import StableOrderingFilter, StrictFilterBackend
from common.api.idempotency import idempotent
from common.api.parsers import JSONParser
from common.api.permissions import StaffOnly
from common.api.schema import IDEMPOTENCY_KEY, IDEMPOTENT, LOOKUP_ANY, errors
from crm.api import signed_in_user

from ..models import WebhookDelivery, WebhookEndpoint
from ..services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
    webhook_test_send,
)
from .webhook_serializers import (
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWriteSerializer,
    WebhookSecretSerializer,
)

ENDPOINT_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="the endpoint's id")
BAD_TARGET = {
    "bad_request": "invalid input naming the field, or `webhook_target_refused`: the URL is "
    "not http(s), does not resolve, or points at a loopback, private or link-local address"
}


@extend_schema_view(
    list=extend_schema(
        summary="Webhook endpoints (staff)",
        responses={200: WebhookEndpointSerializer(many=True), **errors(400, 403, 404)},
    ),
    retrieve=extend_schema(
        summary="One webhook endpoint (staff); its secret is never shown again",
        parameters=[ENDPOINT_ID],
        responses={200: WebhookEndpointSerializer, **errors(403, 404)},
    ),
    destroy=extend_schema(
        summary="Remove a webhook endpoint with its pending events and log (staff)",
        parameters=[ENDPOINT_ID],
        responses={204: None, **errors(403, 404)},
    ),
)
class WebhookEndpointViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    lookup_value_regex = LOOKUP_ANY
    queryset = WebhookEndpoint.objects.select_related("created_by")
    serializer_class = WebhookEndpointSerializer
    permission_classes = [IsAuthenticated, StaffOnly]
    parser_classes = [JSONParser]
    filter_backends = [StrictFilterBackend, StableOrderingFilter]
    ordering_fields = ["id", "created_at"]
    ordering = ["id"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def filter_queryset(self, queryset: Any) -> Any:
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)

    @extend_schema(
        summary="Register a webhook endpoint (staff)",
        description="Answers 201 with the endpoint and its `secret`, shown this once "
        "(`rotate-secret` makes a new one). Each event it subscribes to is POSTed as JSON "
        "signed per Standard Webhooks (docs/api.md).",
        parameters=[IDEMPOTENCY_KEY],
        request=WebhookEndpointWriteSerializer,
        responses={
            201: WebhookEndpointCreatedSerializer,
            **errors(*IDEMPOTENT, 403, 415, **BAD_TARGET),
        },
    )
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = WebhookEndpointWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(
            actor=signed_in_user(request), **serializer.validated_data
        )
        return Response(
            WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        summary="Change a webhook endpoint (staff)",
        description="`active: true` re-enables an endpoint disabled after repeated failure.",
        parameters=[ENDPOINT_ID],
        request=WebhookEndpointWriteSerializer(partial=True),
        responses={200: WebhookEndpointSerializer, **errors(400, 403, 404, 415, **BAD_TARGET)},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        serializer = WebhookEndpointWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(
            endpoint=endpoint, actor=signed_in_user(request), **serializer.validated_data
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        webhook_endpoint_delete(endpoint=self.get_object(), actor=signed_in_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Give the endpoint a new secret (staff)",
        description="Answers the new secret, this once; the old one signs nothing more.",
        parameters=[ENDPOINT_ID],
        request=None,
        responses={200: WebhookSecretSerializer, **errors(403, 404)},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        secret = webhook_endpoint_rotate_secret(
            endpoint=self.get_object(), actor=signed_in_user(request)
        )
        return Response({"secret": secret})

    @extend_schema(
        summary="Send a test event to the endpoint now (staff)",
        description="POSTs a signed `webhook.test` event at once (also to a disabled "
        "endpoint) and answers with the try: `ok`, the receiver's `status_code`, "
        "`latency_ms` and `response_excerpt`, or the `error`. Tried once; it does not "
        "count against the endpoint.",
        parameters=[ENDPOINT_ID],
        request=None,
        responses={200: WebhookDeliverySerializer, **errors(403, 404)},
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        delivery = webhook_test_send(endpoint=self.get_object(), actor=signed_in_user(request))
        return Response(WebhookDeliverySerializer(delivery).data)

    @extend_schema(
        summary="The endpoint's tries, newest first (staff)",
        parameters=[ENDPOINT_ID],
        responses={200: WebhookDeliverySerializer(many=True), **errors(400, 403, 404)},
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def deliveries(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        rows = (
            WebhookDelivery.objects.filter(endpoint=endpoint)
            .select_related("event")
            .order_by("-at", "-pk")
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)


def register(router: DefaultRouter) -> None:
    router.register("webhooks", WebhookEndpointViewSet, basename="webhook")
