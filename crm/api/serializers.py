"""Serializers of the CRM records: shapes and types only; the rules live in crm.services."""

from __future__ import annotations

from rest_framework import serializers

from common.api.serializers import StrictModelSerializer, StrictSerializer
from crm.models import Account, Contact, Organization, Queue, User
from crm.services import MAX_ATTACHMENT_BYTES_CEILING, ORGANIZATION_FIELDS, TRACKING_PREFIX_RE

# --- The API token ---------------------------------------------------------------


class TokenSerializer(StrictSerializer):
    token = serializers.CharField(help_text="send it as: Authorization: Token <token>")


# --- Records ---------------------------------------------------------------------


class UserSerializer(StrictModelSerializer):
    full_name = serializers.CharField(read_only=True)

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "full_name",
            "email_router_access_approval",
            "outgoing_delivery",
        ]
        read_only_fields = fields


class QueueSerializer(StrictModelSerializer):
    members = serializers.PrimaryKeyRelatedField(
        many=True, queryset=User.objects.all(), required=False, help_text="user ids"
    )

    class Meta:
        model = Queue
        fields = [
            "id",
            "name",
            "email",
            "email_router_access_approval",
            "outgoing_delivery",
            "send_rate_per_minute",
            "members",
            "created_at",
        ]
        read_only_fields = ["id", "email_router_access_approval", "created_at"]


class OrganizationSerializer(StrictModelSerializer):
    # Not trimmed: a prefix with a line break is refused, not silently repaired. The
    # bounds are crm.services' rules, stated here so that the schema says them too.
    tracking_token_prefix = serializers.RegexField(
        f"^{TRACKING_PREFIX_RE.pattern}$", max_length=20, trim_whitespace=False, required=False
    )
    tracking_token_digits = serializers.IntegerField(min_value=1, max_value=12, required=False)
    max_attachment_bytes = serializers.IntegerField(
        min_value=1, max_value=MAX_ATTACHMENT_BYTES_CEILING, required=False
    )

    class Meta:
        model = Organization
        fields = [
            *ORGANIZATION_FIELDS,
            "modified_at",
        ]
        read_only_fields = ["modified_at"]


class AccountSerializer(StrictModelSerializer):
    class Meta:
        model = Account
        fields = ["id", "name", "email", "city", "website", "created_at"]
        read_only_fields = ["id", "created_at"]


class TagNamesField(serializers.ListField):
    """Tag names; unknown names become new tags."""

    child = serializers.CharField(max_length=50)

    def to_representation(self, data):
        return [tag.name for tag in data.all()]


class ContactSerializer(StrictModelSerializer):
    tags = TagNamesField(required=False, max_length=100)

    class Meta:
        model = Contact
        fields = [
            "id",
            "first_name",
            "last_name",
            "email",
            "account",
            "city",
            "tags",
            "do_not_email",
            "do_not_bulk_email",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
