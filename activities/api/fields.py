"""Serializer fields shared by the email, template and bulk endpoints."""

from __future__ import annotations

from typing import Any

from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.api.filters import MAX_ID
from common.api.serializers import StrictSerializer

from ..addresses import parse_address
from ..errors import ApplicationError
from ..models import DeliveryState
from ..records import RECORD_MODELS, record_type_of


class RecordRefSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=list(RECORD_MODELS))
    id = serializers.IntegerField(min_value=1, max_value=MAX_ID)


@extend_schema_field(RecordRefSerializer)
class RecordRefField(serializers.Field):
    """``{"type": "contact", "id": 5}`` <-> the record; ``types`` limits the kinds."""

    default_error_messages = {
        "invalid": 'expected {{"type": one of {types}, "id": <integer>}}',
        "not_found": "there is no {type} with id {id}",
        "unknown_keys": 'unknown keys: {keys} (a record is {{"type", "id"}})',
    }

    def __init__(self, *, types: tuple[str, ...] = tuple(RECORD_MODELS), **kwargs):
        self.types = types
        super().__init__(**kwargs)

    def to_representation(self, value: models.Model | None) -> dict[str, Any] | None:
        if value is None:
            return None
        return {"type": record_type_of(value), "id": value.pk}

    def to_internal_value(self, data: Any) -> models.Model:
        if (
            not isinstance(data, dict)
            or data.get("type") not in self.types
            or not isinstance(data.get("id"), int)
            or isinstance(data.get("id"), bool)
        ):
            self.fail("invalid", types=", ".join(self.types))
        unknown = set(data) - {"type", "id"}
        if unknown:  # they were dropped in silence (issue 11)
            self.fail("unknown_keys", keys=", ".join(sorted(map(str, unknown))))
        model = RECORD_MODELS[data["type"]]
        record = model.objects.filter(pk=data["id"]).first()
        if record is None:
            self.fail("not_found", type=data["type"], id=data["id"])
        return record


_DATETIME = serializers.DateTimeField()


def party_representation(party) -> dict[str, Any]:
    """A recipient as the API shows it."""
    return {
        "address": party.address,
        "name": party.name,
        "contact": party.contact_id,
        "user": party.user_id,
        "queue": party.queue_id,
        "delivery_state": party.delivery_state or None,
        "delivery_updated_at": (
            _DATETIME.to_representation(party.delivery_updated_at)
            if party.delivery_updated_at
            else None
        ),
    }


class PartyOutSerializer(StrictSerializer):
    address = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    contact = serializers.IntegerField(allow_null=True)
    user = serializers.IntegerField(allow_null=True)
    queue = serializers.IntegerField(allow_null=True)
    delivery_state = serializers.ChoiceField(
        choices=DeliveryState.choices,
        allow_null=True,
        help_text="what the provider (or a bounce) last said of this recipient; "
        "only moves forward (docs/architecture.md); null before it was sent",
    )
    delivery_updated_at = serializers.DateTimeField(
        allow_null=True, help_text="the provider's time of the event that set the state"
    )


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "example": "Ann Lee <ann@example.com>"},
            {
                "type": "object",
                "properties": {
                    "address": {"type": "string"},
                    "name": {"type": "string"},
                    "contact": {"type": "integer", "nullable": True},
                    "user": {"type": "integer", "nullable": True},
                    "queue": {"type": "integer", "nullable": True},
                },
                # Other keys are refused (PartyField.to_internal_value).
                "additionalProperties": False,
            },
        ]
    }
)
class PartyField(serializers.Field):
    """A recipient: ``"Ann Lee <ann@example.com>"`` or ``{"address", "name", "contact"}``.

    Input is checked here for shape and address syntax (a 400 naming the field); the
    service checks it again and resolves records.
    """

    def to_representation(self, party) -> dict[str, Any]:
        return party_representation(party)

    def to_internal_value(self, data: Any) -> str | dict[str, Any]:
        try:
            if isinstance(data, str):
                parse_address(data)
                return data
            if isinstance(data, dict):
                allowed = {"address", "name", "contact", "user", "queue"}
                unknown = set(data) - allowed
                if unknown:
                    raise serializers.ValidationError(f"unknown keys: {', '.join(sorted(unknown))}")
                refs = [k for k in ("contact", "user", "queue") if data.get(k) is not None]
                if len(refs) > 1:
                    raise serializers.ValidationError("give at most one of contact, user, queue")
                for ref in refs:
                    if not isinstance(data[ref], int) or isinstance(data[ref], bool):
                        raise serializers.ValidationError(f"{ref} must be an id")
                if not refs and not data.get("address"):
                    raise serializers.ValidationError("an address is required")
                for text in ("address", "name"):
                    if text in data and not isinstance(data[text], str):
                        raise serializers.ValidationError(f"{text} must be a string")
                if data.get("address"):
                    parse_address(data["address"])
                return data
        except ApplicationError as exc:
            raise serializers.ValidationError(exc.message) from exc
        raise serializers.ValidationError("a recipient is an address string or an object")


@extend_schema_field(OpenApiTypes.STR)
class LeaseTokenField(serializers.CharField):
    pass
