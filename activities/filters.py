"""List filters shared by the API and the staff pages (django-filter)."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db.models import Exists, OuterRef, QuerySet
from django_filters import rest_framework as filters

from common.api.filters import IdFilter, StrictBooleanFilter, UtcIsoDateTimeFilter

from .models import DeliveryState, Direction, Email, EmailParty, EmailState, EmailStatus, Priority
from .records import RECORD_MODELS


class EmailFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(
        choices=EmailStatus.choices, help_text="repeat for several: ?status=draft&status=failed"
    )
    state = filters.ChoiceFilter(choices=EmailState.choices)
    direction = filters.ChoiceFilter(choices=Direction.choices)
    priority = filters.MultipleChoiceFilter(choices=Priority.choices)
    sender_queue = IdFilter(min_value=0, field_name="sender_queue_id", help_text="queue id")
    sender_user = IdFilter(min_value=0, field_name="sender_user_id", help_text="user id")
    template = IdFilter(min_value=0, field_name="template_id", help_text="template id")
    bulk_send = IdFilter(
        min_value=0, field_name="bulk_send_id", help_text="bulk job id: the job's emails"
    )
    regarding_type = filters.ChoiceFilter(
        choices=[(name, name) for name in RECORD_MODELS],
        method="filter_regarding_type",
        help_text="with regarding_id: the emails about one record",
    )
    regarding_id = IdFilter(min_value=0, field_name="regarding_id")
    possible_duplicate = StrictBooleanFilter()
    delivery = filters.MultipleChoiceFilter(
        choices=DeliveryState.choices,
        method="filter_delivery",
        help_text="emails with a recipient in this delivery state (repeat for several: "
        "?delivery=bounced&delivery=complained)",
    )
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    sent_after = UtcIsoDateTimeFilter(field_name="sent_at", lookup_expr="gte")
    sent_before = UtcIsoDateTimeFilter(field_name="sent_at", lookup_expr="lt")

    class Meta:
        model = Email
        fields: list[str] = []

    def filter_delivery(self, queryset: QuerySet[Email], name: str, value: list[str]):
        if not value:
            return queryset
        recipients = EmailParty.objects.filter(email=OuterRef("pk"), delivery_state__in=value)
        return queryset.filter(Exists(recipients))

    def filter_regarding_type(self, queryset: QuerySet[Email], name: str, value: str):
        content_type = ContentType.objects.get_for_model(RECORD_MODELS[value])
        return queryset.filter(regarding_type=content_type)
