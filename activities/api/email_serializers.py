"""Serializers of the email endpoints: the representation of API.md and the inputs.

Output serializers read only what ``email_list_queryset`` selects and prefetches, so a
page of emails costs the same number of queries whatever its size. Input serializers
check shape and types (a 400 naming the field); the rules stay in the services.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from common.api.filters import MAX_ID
from common.api.serializers import StrictModelSerializer, StrictSerializer

from ..addresses import MAX_CUSTOM_HEADERS, MAX_HEADER_LINE_LENGTH, MAX_HEADER_NAME_LENGTH
from ..models import (
    ActivityMimeAttachment,
    Direction,
    Email,
    EmailEvent,
    EmailState,
    EmailStatus,
    PartyRole,
    Priority,
    Template,
)
from ..selectors import templates_visible_to
from ..services.claim import MAX_CLAIM_BATCH, MAX_LEASE_SECONDS
from ..services.emails import SUBJECT_MAX_LENGTH
from .fields import (
    LeaseTokenField,
    PartyField,
    PartyOutSerializer,
    RecordRefField,
    RecordRefSerializer,
    party_representation,
)

MAX_RECIPIENTS_PER_ROLE = 500
SENDER_TYPES = ("user", "queue")


# --- fields ------------------------------------------------------------------------


class BlankAsNullCharField(serializers.CharField):
    """A text column that holds ``""`` for "none": shown as ``null``, as in API.md."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str | None:  # type: ignore[override]  # the stub's CharField never answers null
        return value or None


class PresentBooleanField(serializers.BooleanField):
    """A boolean whose default holds when the key is absent, also in form-encoded input.

    DRF reads a missing checkbox of an HTML form as false; for ``issue_send`` that would
    turn "send" into "mark as sent" for a form post that simply left it out.
    """

    def get_value(self, dictionary: Any) -> Any:
        if self.field_name not in dictionary:
            return empty
        return super().get_value(dictionary)


class SenderRefSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=SENDER_TYPES)
    id = serializers.IntegerField(min_value=1, max_value=MAX_ID)


class EmailAttachmentSerializer(StrictSerializer):
    id = serializers.IntegerField()
    filename = serializers.CharField()
    mime_type = serializers.CharField()
    size = serializers.IntegerField()
    attachment_id = serializers.CharField(help_text="SHA-256 of the content (hex)")
    subject = serializers.CharField(allow_blank=True)


def attachment_representation(attachment: ActivityMimeAttachment) -> dict[str, Any]:
    return {
        "id": attachment.pk,
        "filename": attachment.filename,
        "mime_type": attachment.mime_type,
        "size": attachment.blob.size,
        "attachment_id": attachment.blob.sha256,
        "subject": attachment.subject,
    }


# --- the email ---------------------------------------------------------------------


class CustomHeaderSerializer(StrictSerializer):
    """A custom header: refused if it is one the application writes (From, Subject,
    Message-ID, Content-*, ...), or holds CR, LF or NUL."""

    name = serializers.CharField(max_length=MAX_HEADER_NAME_LENGTH)
    value = serializers.CharField(
        max_length=MAX_HEADER_LINE_LENGTH, allow_blank=True, trim_whitespace=False
    )


class EmailSerializer(StrictSerializer):
    """An email as API.md shows it, plus ``possible_duplicate`` and ``events_url``."""

    id = serializers.IntegerField(read_only=True)
    subject = serializers.CharField(read_only=True)
    body_html = serializers.CharField(read_only=True)
    body_text = serializers.CharField(read_only=True)
    direction = serializers.ChoiceField(choices=Direction.choices, read_only=True)
    status = serializers.ChoiceField(choices=EmailStatus.choices, read_only=True)
    state = serializers.ChoiceField(choices=EmailState.choices, read_only=True)
    sender = serializers.SerializerMethodField()
    from_address = serializers.SerializerMethodField()
    to = serializers.SerializerMethodField()
    cc = serializers.SerializerMethodField()
    bcc = serializers.SerializerMethodField()
    reply_to = serializers.SerializerMethodField()
    regarding = serializers.SerializerMethodField()
    priority = serializers.ChoiceField(choices=Priority.choices, read_only=True)
    headers = CustomHeaderSerializer(many=True, read_only=True)
    request_delivery_receipt = serializers.BooleanField(read_only=True)
    request_read_receipt = serializers.BooleanField(read_only=True)
    template = serializers.IntegerField(source="template_id", read_only=True, allow_null=True)
    tracking_token = BlankAsNullCharField()
    message_id = BlankAsNullCharField()
    in_reply_to = BlankAsNullCharField()
    attachments = serializers.SerializerMethodField()
    attempts = serializers.IntegerField(read_only=True)
    last_error = BlankAsNullCharField()
    possible_duplicate = serializers.BooleanField(
        read_only=True,
        help_text="a delivery attempt may have reached the recipients before it was retried",
    )
    scheduled_at = serializers.DateTimeField(read_only=True, allow_null=True)
    sent_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    modified_at = serializers.DateTimeField(read_only=True)
    events_url = serializers.SerializerMethodField()

    @extend_schema_field(SenderRefSerializer(allow_null=True))
    def get_sender(self, email: Email) -> dict[str, Any] | None:
        if email.sender_queue_id:
            return {"type": "queue", "id": email.sender_queue_id}
        if email.sender_user_id:
            return {"type": "user", "id": email.sender_user_id}
        return None

    @extend_schema_field(serializers.CharField(allow_blank=True))
    def get_from_address(self, email: Email) -> str:
        # Fixed when the email is accepted for delivery; before that, the sender's address.
        if email.from_address:
            return email.from_address
        sender = email.sender
        return (sender.email or "") if sender is not None else ""

    def _parties(self, email: Email, role: str) -> list[dict[str, Any]]:
        return [party_representation(p) for p in email.parties.all() if p.role == role]

    @extend_schema_field(PartyOutSerializer(many=True))
    def get_to(self, email: Email) -> list[dict[str, Any]]:
        return self._parties(email, PartyRole.TO)

    @extend_schema_field(PartyOutSerializer(many=True))
    def get_cc(self, email: Email) -> list[dict[str, Any]]:
        return self._parties(email, PartyRole.CC)

    @extend_schema_field(PartyOutSerializer(many=True))
    def get_bcc(self, email: Email) -> list[dict[str, Any]]:
        return self._parties(email, PartyRole.BCC)

    @extend_schema_field(PartyOutSerializer(many=True))
    def get_reply_to(self, email: Email) -> list[dict[str, Any]]:
        return self._parties(email, PartyRole.REPLY_TO)

    @extend_schema_field(RecordRefSerializer(allow_null=True))
    def get_regarding(self, email: Email) -> dict[str, Any] | None:
        if email.regarding_id is None or email.regarding_type is None:
            return None
        return {"type": email.regarding_type.model, "id": email.regarding_id}

    @extend_schema_field(EmailAttachmentSerializer(many=True))
    def get_attachments(self, email: Email) -> list[dict[str, Any]]:
        return [attachment_representation(a) for a in email.attachments.all()]

    @extend_schema_field(serializers.URLField())
    def get_events_url(self, email: Email) -> str:
        path = reverse("email-events", args=[email.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class ClaimedAttachmentSerializer(EmailAttachmentSerializer):
    content_url = serializers.URLField(help_text="GET it (with your token) for the bytes")


class ClaimedEmailSerializer(EmailSerializer):
    """An email as a claim hands it over: with its lease and where to fetch attachments."""

    lease_token = LeaseTokenField(
        read_only=True, help_text="give it back with the outcome (delivery-result)"
    )
    lease_expires_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(ClaimedAttachmentSerializer(many=True))
    def get_attachments(self, email: Email) -> list[dict[str, Any]]:
        root = self.context["api_root"]
        return [
            {**attachment_representation(a), "content_url": f"{root}attachments/{a.pk}/content/"}
            for a in email.attachments.all()
        ]


class EmailClaimResponseSerializer(StrictSerializer):
    results = ClaimedEmailSerializer(many=True)


class EmailEventSerializer(StrictModelSerializer):
    from_status = BlankAsNullCharField()
    to_status = BlankAsNullCharField()
    actor = serializers.IntegerField(
        source="actor_id", read_only=True, allow_null=True, help_text="the user, if any"
    )
    # The metaclass takes declared fields out of the class: Serializer.data stays as it is.
    data = serializers.JSONField(read_only=True)  # type: ignore[assignment]

    class Meta:
        model = EmailEvent
        fields = [
            "id",
            "kind",
            "from_status",
            "to_status",
            "actor",
            "actor_label",
            "reason",
            "data",
            "created_at",
        ]
        read_only_fields = fields


class EmailSendResultSerializer(StrictSerializer):
    id = serializers.IntegerField()
    subject = serializers.CharField(allow_blank=True, help_text="final, with the tracking token")
    status = serializers.ChoiceField(choices=[EmailStatus.PENDING_SEND, EmailStatus.SENT])


# --- inputs --------------------------------------------------------------------------


def _recipients() -> serializers.ListField:
    return serializers.ListField(
        child=PartyField(), required=False, max_length=MAX_RECIPIENTS_PER_ROLE
    )


class _AddressedSerializer(StrictSerializer):
    """Sender and recipients, and a template limited to those the user may see."""

    sender = RecordRefField(
        types=SENDER_TYPES,
        required=False,
        help_text="a user or a queue; the acting user if left out",
    )
    to = _recipients()
    cc = _recipients()
    bcc = _recipients()
    reply_to = _recipients()
    headers = serializers.ListField(
        child=CustomHeaderSerializer(), required=False, max_length=MAX_CUSTOM_HEADERS
    )
    request_delivery_receipt = PresentBooleanField(
        required=False, help_text="ask for a delivery receipt to the sender's address"
    )
    request_read_receipt = PresentBooleanField(
        required=False, help_text="ask for a read receipt to the sender's address"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and "template" in self.fields:
            template = self.fields["template"]
            assert isinstance(template, serializers.RelatedField)
            template.queryset = templates_visible_to(request.user)


class EmailWriteSerializer(_AddressedSerializer):
    """Create (``POST emails/``) or edit (``PATCH emails/{id}/``) a draft."""

    subject = serializers.CharField(
        required=False, allow_blank=True, max_length=SUBJECT_MAX_LENGTH, trim_whitespace=False
    )
    body_html = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    body_text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    regarding = RecordRefField(required=False, allow_null=True)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    template = serializers.PrimaryKeyRelatedField(
        queryset=Template.objects.all(), required=False, allow_null=True
    )
    in_reply_to = serializers.CharField(required=False, allow_blank=True, max_length=255)
    tracking_token = serializers.CharField(required=False, allow_blank=True, max_length=40)
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True)


class EmailSendSerializer(StrictSerializer):
    issue_send = PresentBooleanField(
        default=True, help_text="false: mark as sent without delivering anything"
    )
    tracking_token = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=40
    )


class EmailCancelSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000)


class EmailSendFromTemplateSerializer(_AddressedSerializer):
    template = serializers.PrimaryKeyRelatedField(queryset=Template.objects.all())
    regarding = RecordRefField(required=False, allow_null=True, default=None)


class EmailClaimSerializer(StrictSerializer):
    max = serializers.IntegerField(
        min_value=1, max_value=MAX_CLAIM_BATCH, default=50, help_text="how many emails at most"
    )
    lease_seconds = serializers.IntegerField(
        min_value=1,
        max_value=MAX_LEASE_SECONDS,
        required=False,
        help_text="how long the lease lasts; the server's default if left out",
    )


class EmailDeliveryResultSerializer(StrictSerializer):
    lease_token = LeaseTokenField(
        required=False, allow_blank=True, allow_null=True, max_length=40, default=None
    )
    outcome = serializers.ChoiceField(choices=["sent", "failed"])
    message_id = serializers.CharField(required=False, allow_blank=True, max_length=998)
    error = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    permanent = PresentBooleanField(
        default=True,
        help_text="for a failure: false lets the email be claimed again after a backoff",
    )


class EmailDeliveryResultItemSerializer(EmailDeliveryResultSerializer):
    id = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="the claimed email's id")


class EmailDeliveryResultsSerializer(StrictSerializer):
    results = EmailDeliveryResultItemSerializer(  # type: ignore[call-arg]  # max_length goes to the ListSerializer; the stub lacks it
        many=True, allow_empty=False, max_length=500
    )


class EmailDeliveryResultOutcomeSerializer(StrictSerializer):
    id = serializers.IntegerField()
    recorded = serializers.BooleanField()
    status = serializers.CharField(allow_null=True, help_text="the email's status now")
    code = serializers.CharField(
        allow_blank=True, help_text="why it was not recorded: `stale_lease`, `not_found`, ..."
    )
    detail = serializers.CharField(allow_blank=True)


class EmailDeliveryResultsResponseSerializer(StrictSerializer):
    results = EmailDeliveryResultOutcomeSerializer(many=True)
