"""The email endpoints of API.md: CRUD, send, cancel, events, send from template, claim.

Thin views: every query starts from ``emails_visible_to(request.user)`` (an email the
caller may not see is a 404, also for actions), every change is one service call, and
the services' errors become responses in ``common.api.exceptions``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import SearchFilter
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import APIView

from common.api.filters import StableOrderingFilter, StrictFilterBackend
from common.api.idempotency import idempotent
from common.api.parsers import JSONParser
from common.api.schema import IDEMPOTENCY_KEY, IDEMPOTENT, LOOKUP_ANY, errors
from crm.api import signed_in_user

from ..filters import EmailFilter
from ..models import Email, EmailEvent, EmailStatus
from ..selectors import email_list_queryset, emails_matching, emails_visible_to
from ..services.claim import email_claim_batch, email_report_deliveries, email_report_delivery
from ..services.emails import (
    email_cancel,
    email_create,
    email_delete,
    email_send,
    email_send_from_template,
    email_update,
)
from .email_serializers import (
    ClaimedEmailSerializer,
    EmailCancelSerializer,
    EmailClaimResponseSerializer,
    EmailClaimSerializer,
    EmailDeliveryResultSerializer,
    EmailDeliveryResultsResponseSerializer,
    EmailDeliveryResultsSerializer,
    EmailEventSerializer,
    EmailSendFromTemplateSerializer,
    EmailSendResultSerializer,
    EmailSendSerializer,
    EmailSerializer,
    EmailWriteSerializer,
)

# --- documented parameters and statuses -------------------------------------------------

EMAIL_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="the email's id")


# --- list filters -----------------------------------------------------------------------


class EmailSearchFilter(SearchFilter):
    """``?search=``: every term in the subject or in a party's address or name
    (``selectors.emails_matching``)."""

    search_description = "words to find in the subject or in the addresses and names of parties"

    def filter_queryset(
        self, request: Request, queryset: QuerySet[Any, Any], view: APIView
    ) -> QuerySet[Any, Any]:
        return emails_matching(queryset, self.get_search_terms(request))


# --- the viewset ------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List the emails the caller may see",
        responses={200: EmailSerializer(many=True), **errors(400, 404)},
    ),
    retrieve=extend_schema(
        summary="One email",
        parameters=[EMAIL_ID],
        responses={200: EmailSerializer, **errors(404)},
    ),
)
class EmailViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Email.objects.none()  # the real one is per caller: get_queryset
    serializer_class = EmailSerializer
    filter_backends = [StrictFilterBackend, EmailSearchFilter, StableOrderingFilter]
    filterset_class = EmailFilter
    ordering_fields = ["created_at", "sent_at", "subject", "id"]
    ordering = ["-created_at", "-id"]
    parser_classes = [JSONParser]
    lookup_value_regex = LOOKUP_ANY
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Email]:
        emails = emails_visible_to(self.request.user)
        if self.action in ("list", "retrieve"):
            return email_list_queryset(emails)
        return emails

    def filter_queryset(self, queryset: QuerySet[Email, Any]) -> QuerySet[Email, Any]:
        # List parameters filter the list only; a detail or action URL names its email.
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)

    def _email_response(self, email_id: int, http_status: int) -> Response:
        email = email_list_queryset(Email.objects.filter(pk=email_id)).get()
        data = EmailSerializer(email, context=self.get_serializer_context()).data
        return Response(data, status=http_status)

    # --- create, edit, delete -------------------------------------------------------

    @extend_schema(
        summary="Create a draft",
        parameters=[IDEMPOTENCY_KEY],
        request=EmailWriteSerializer,
        responses={201: EmailSerializer, **errors(*IDEMPOTENT, 403, 415)},
    )
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = EmailWriteSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        email = email_create(actor=signed_in_user(request), **serializer.validated_data)
        return self._email_response(email.pk, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Edit a draft or failed email",
        parameters=[EMAIL_ID],
        description="Only `draft` and `failed` emails are editable; any other status is a 409.",
        request=EmailWriteSerializer,
        responses={200: EmailSerializer, **errors(400, 403, 404, 409, 415)},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        email = self.get_object()
        serializer = EmailWriteSerializer(
            data=request.data, partial=True, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        email_update(email=email, actor=signed_in_user(request), **serializer.validated_data)
        return self._email_response(email.pk, status.HTTP_200_OK)

    @extend_schema(
        summary="Delete an email",
        parameters=[EMAIL_ID],
        description=(
            "Any status but `pending_send` and `sending` (409: cancel a pending email first). "
            "Needs to be allowed to act for the sender, or `activities.delete_email`."
        ),
        responses={204: None, **errors(403, 404, 409)},
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        email_delete(email=self.get_object(), actor=signed_in_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- actions --------------------------------------------------------------------

    @extend_schema(
        summary="Send, or mark as sent",
        parameters=[EMAIL_ID, IDEMPOTENCY_KEY],
        description=(
            "`issue_send: true` (default) queues the email for delivery: 202 `pending_send`. "
            "`issue_send: false` marks it as sent without delivering anything: 200 `sent`. "
            "Refusals name the cause with a `code`: `not_outgoing` and `invalid_status` (409), "
            "`no_recipients`, `invalid_address`, `invalid_header`, `sender_not_approved`, "
            "`recipient_suppressed` (an address that hard-bounced or complained) (400), "
            "`sender_not_allowed` (403)."
        ),
        request=EmailSendSerializer,
        responses={
            202: EmailSendResultSerializer,
            200: EmailSendResultSerializer,
            **errors(*IDEMPOTENT, 403, 404, 415),
        },
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def send(self, request: Request, pk: str | None = None) -> Response:
        email = self.get_object()
        serializer = EmailSendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = email_send(
            email=email,
            actor=signed_in_user(request),
            issue_send=serializer.validated_data["issue_send"],
            tracking_token=serializer.validated_data.get("tracking_token"),
        )
        queued = result.status == EmailStatus.PENDING_SEND
        return Response(
            {"id": result.pk, "subject": result.subject, "status": result.status},
            status=status.HTTP_202_ACCEPTED if queued else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Cancel a draft or pending email",
        parameters=[EMAIL_ID, IDEMPOTENCY_KEY],
        request=EmailCancelSerializer,
        responses={200: EmailSerializer, **errors(*IDEMPOTENT, 403, 404, 415)},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        email = self.get_object()
        serializer = EmailCancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email_cancel(email=email, actor=signed_in_user(request), **serializer.validated_data)
        return self._email_response(email.pk, status.HTTP_200_OK)

    @extend_schema(
        summary="What happened to the email, oldest first",
        parameters=[EMAIL_ID],
        responses={200: EmailEventSerializer(many=True), **errors(400, 404)},
    )
    @action(detail=True, methods=["get"], serializer_class=EmailEventSerializer, filter_backends=[])
    def events(self, request: Request, pk: str | None = None) -> Response:
        email = self.get_object()
        events = EmailEvent.objects.filter(email=email).order_by("created_at", "id")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(EmailEventSerializer(page, many=True).data)

    @extend_schema(
        summary="Create from a template and send in one step",
        parameters=[IDEMPOTENCY_KEY],
        description="A template error is a 400 naming the line (`code: template_error`, `line`).",
        request=EmailSendFromTemplateSerializer,
        responses={202: EmailSerializer, **errors(*IDEMPOTENT, 403, 415)},
    )
    @action(detail=False, methods=["post"], url_path="send-from-template")
    @idempotent
    def send_from_template(self, request: Request) -> Response:
        serializer = EmailSendFromTemplateSerializer(
            data=request.data, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        email = email_send_from_template(actor=signed_in_user(request), **serializer.validated_data)
        return self._email_response(email.pk, status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Claim pending emails for an external send component",
        parameters=[IDEMPOTENCY_KEY],
        description=(
            "Takes up to `max` pending emails that the caller may see and whose sender has "
            "`outgoing_delivery: external`; they are now `sending`, leased to the caller "
            "until `lease_expires_at`. Report each outcome to `delivery-result` with its "
            "`lease_token`. No email is handed to two callers."
        ),
        request=EmailClaimSerializer,
        responses={200: EmailClaimResponseSerializer, **errors(*IDEMPOTENT, 415)},
    )
    @action(detail=False, methods=["post"])
    @idempotent
    def claim(self, request: Request) -> Response:
        serializer = EmailClaimSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        claimed = email_claim_batch(
            actor=signed_in_user(request),
            max_count=serializer.validated_data["max"],
            lease_seconds=serializer.validated_data.get("lease_seconds"),
        )
        by_id = email_list_queryset(Email.objects.filter(pk__in=[e.pk for e in claimed])).in_bulk()
        context = {
            **self.get_serializer_context(),
            "api_root": request.build_absolute_uri(reverse("api-root")),
        }
        results = ClaimedEmailSerializer(
            [by_id[e.pk] for e in claimed if e.pk in by_id], many=True, context=context
        ).data
        return Response({"results": results}, status=status.HTTP_200_OK)

    @extend_schema(
        summary="Report the outcome of a claimed email",
        parameters=[EMAIL_ID, IDEMPOTENCY_KEY],
        description=(
            "`outcome: sent` records the email as sent; `failed` records the failure (final "
            "unless `permanent: false`, which lets it be claimed again after a backoff). A "
            "missing, stale or foreign `lease_token` is a 409 (`stale_lease`) and changes "
            "nothing."
        ),
        request=EmailDeliveryResultSerializer,
        responses={200: EmailSerializer, **errors(*IDEMPOTENT, 404, 415)},
    )
    @action(detail=True, methods=["post"], url_path="delivery-result")
    @idempotent
    def delivery_result(self, request: Request, pk: str | None = None) -> Response:
        email = self.get_object()
        serializer = EmailDeliveryResultSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        email_report_delivery(
            email=email,
            actor=signed_in_user(request),
            lease_token=data["lease_token"],
            outcome=data["outcome"],
            message_id=data.get("message_id", ""),
            error=data.get("error", ""),
            permanent=data["permanent"],
        )
        return self._email_response(email.pk, status.HTTP_200_OK)

    @extend_schema(
        summary="Report the outcomes of many claimed emails at once",
        parameters=[IDEMPOTENCY_KEY],
        description=(
            "The batch form of `{id}/delivery-result/` (an addition to API.md), for external "
            "senders that deliver many emails per claim: up to 500 results, each recorded "
            "on its own. The answer lists each email with `recorded`; one that is not "
            "recorded names why in `code` (`stale_lease` for a missing, stale or foreign "
            "token, `not_found` for an email the caller cannot see) and changes nothing."
        ),
        request=EmailDeliveryResultsSerializer,
        responses={200: EmailDeliveryResultsResponseSerializer, **errors(*IDEMPOTENT, 415)},
    )
    @action(detail=False, methods=["post"], url_path="delivery-results")
    @idempotent
    def delivery_results(self, request: Request) -> Response:
        serializer = EmailDeliveryResultsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcomes = email_report_deliveries(
            actor=signed_in_user(request), reports=serializer.validated_data["results"]
        )
        data = EmailDeliveryResultsResponseSerializer({"results": outcomes}).data
        return Response(data, status=status.HTTP_200_OK)


def register(router: DefaultRouter) -> None:
    router.register("emails", EmailViewSet, basename="email")
