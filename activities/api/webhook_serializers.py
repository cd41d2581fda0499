"""Serializers of ``webhooks/``: an endpoint (its secret only in the create answer and
from ``rotate-secret``), what a create or change takes, and the log of tries."""

from __future__ import annotations

from rest_framework import serializers

from common.api.serializers import StrictSerializer
from crm.models import User

from ..models import (
    ENDPOINT_STATE_FIELDS,
    SUBSCRIBABLE_EVENT_TYPES,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookFormat,
)

URL_MAX_LENGTH = 2000


class WebhookEndpointSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENT_TYPES),
        help_text="the events it receives",
    )
    created_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "format",
            "active",
            *ENDPOINT_STATE_FIELDS,
            "modified_at",
        ]
        read_only_fields = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="the Standard Webhooks secret (whsec_...), shown only in this answer: "
        "verify each notification's webhook-signature with it",
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointWriteSerializer(StrictSerializer):
    url = serializers.URLField(
        max_length=URL_MAX_LENGTH,
        help_text="http:// or https://; loopback, private and link-local targets are refused "
        "unless the server allows them (CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS)",
    )
    description = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE_EVENT_TYPES),
        min_length=1,
        max_length=len(SUBSCRIBABLE_EVENT_TYPES),
        help_text="the events it receives, at least one",
    )
    format = serializers.ChoiceField(
        choices=WebhookFormat.choices,
        default=WebhookFormat.STANDARD,
        help_text="standard: {type, timestamp, data}; genesys: Genesys' StatusChange for "
        "email events",
    )
    active = serializers.BooleanField(
        default=True, help_text="true re-enables an endpoint disabled after failures"
    )


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="the new secret, shown only in this answer")


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_type = serializers.CharField(source="event.event_type", read_only=True)
    message_id = serializers.CharField(
        source="event.message_id", read_only=True, help_text="the webhook-id header"
    )

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "event_type",
            "message_id",
            "attempt",
            "at",
            "url",
            "ok",
            "status_code",
            "latency_ms",
            "response_excerpt",
            "error",
        ]
        read_only_fields = fields
