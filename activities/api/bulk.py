"""``bulk-sends/``: start a bulk send (Dynamics' SendBulkMail), watch it, cancel it.

Thin views: every query starts from ``bulk_sends_visible_to(request.user)`` (a job the
caller may not see is a 404, also for ``cancel``), starting and canceling are one
service call each, and the services' errors become responses in ``common.api.exceptions``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from common.api.filters import IdFilter, StableOrderingFilter, StrictFilterBackend
from common.api.idempotency import idempotent
from common.api.parsers import JSONParser
from common.api.schema import IDEMPOTENCY_KEY, IDEMPOTENT, LOOKUP_ANY, errors
from crm.api import signed_in_user

from ..models import BulkSend, BulkSendStatus
from ..selectors import bulk_sends_visible_to, bulk_sends_with_progress
from ..services.bulk import bulk_send_cancel, bulk_send_start
from .bulk_serializers import BulkSendSerializer, BulkSendStartSerializer

JOB_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="the bulk job's id")

ERRORS = {
    "bad_request": "invalid input naming the field (an unknown template or record, a query "
    'key or value that is not understood), or {"detail", "code"}: `sender_not_approved`, '
    "`invalid_address` (the sender has no usable address), `invalid` (a query or template "
    "that does not fit)",
    "forbidden": "`sender_not_allowed`: the caller may not send as this user or queue",
    "conflict": "the job is already completed, canceled or failed (`status` names which); "
    "or an Idempotency-Key conflict",
}


class BulkSendFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(
        choices=BulkSendStatus.choices,
        help_text="repeat for several: ?status=queued&status=running",
    )
    template = IdFilter(field_name="template_id", help_text="template id")
    sender_queue = IdFilter(field_name="sender_queue_id", help_text="queue id")
    sender_user = IdFilter(field_name="sender_user_id", help_text="user id")

    class Meta:
        model = BulkSend
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(
        summary="List the bulk jobs the caller may see",
        description="Staff see every job; others the jobs they started or that send as them "
        "or as a queue they are a member of. Newest first.",
        responses={200: BulkSendSerializer(many=True), **errors(400, 404)},
    ),
    retrieve=extend_schema(
        summary="One bulk job and its progress",
        parameters=[JOB_ID],
        responses={200: BulkSendSerializer, **errors(404)},
    ),
)
class BulkSendViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = BulkSend.objects.none()  # the real one is per caller: get_queryset
    serializer_class = BulkSendSerializer
    filter_backends = [StrictFilterBackend, StableOrderingFilter]
    filterset_class = BulkSendFilter
    ordering_fields = ["created_at", "started_at", "finished_at", "id"]
    ordering = ["-created_at", "-id"]
    parser_classes = [JSONParser]
    lookup_value_regex = LOOKUP_ANY

    def get_queryset(self) -> QuerySet[BulkSend]:
        return bulk_sends_with_progress(
            bulk_sends_visible_to(self.request.user).select_related("regarding_type")
        )

    def filter_queryset(self, queryset: QuerySet[BulkSend, Any]) -> QuerySet[BulkSend, Any]:
        # List parameters filter the list only; a detail or action URL names its job.
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(
            BulkSendSerializer(page, many=True, context=self.get_serializer_context()).data
        )

    def _job_response(self, job_id: int, http_status: int) -> Response:
        job = self.get_queryset().get(pk=job_id)
        data = BulkSendSerializer(job, context=self.get_serializer_context()).data
        return Response(data, status=http_status)

    @extend_schema(
        summary="Start a bulk send",
        parameters=[IDEMPOTENCY_KEY],
        description=(
            "Writes the template to every contact the `query` selects (all given filters "
            "must match: `account` id, `city`, `tag`, `created_after`, `created_before`), "
            "as `sender` (the acting user if left out), and queues each email for delivery. "
            "Contacts without an address, with `do_not_bulk_email` or on the suppression "
            "list are skipped and counted. Answers 202 at once with the job in status "
            "`queued`; follow its progress with GET `bulk-sends/{id}/`."
        ),
        request=BulkSendStartSerializer,
        responses={202: BulkSendSerializer, **errors(*IDEMPOTENT, 403, 415, **ERRORS)},
    )
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = BulkSendStartSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = bulk_send_start(
            template=data["template"],
            sender=data.get("sender") or signed_in_user(request),
            query=data["query"],
            regarding=data["regarding"],
            actor=signed_in_user(request),
        )
        # The job as started: its run may already have begun once the start committed,
        # but the answer to this request is the queued job (API.md).
        data = BulkSendSerializer(job, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Cancel a bulk send",
        parameters=[JOB_ID, IDEMPOTENCY_KEY],
        description=(
            "Stops a `queued` or `running` job: no further emails are written. Emails "
            "already written keep their course. A job that is already `completed`, "
            "`canceled` or `failed` is a 409 naming its status."
        ),
        request=None,
        responses={200: BulkSendSerializer, **errors(*IDEMPOTENT, 403, 404, 415, **ERRORS)},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        job = bulk_send_cancel(job=self.get_object(), actor=signed_in_user(request))
        return self._job_response(job.pk, status.HTTP_200_OK)


def register(router: DefaultRouter) -> None:
    router.register("bulk-sends", BulkSendViewSet, basename="bulk-send")
