"""The CRM record endpoints: users, queues, the organisation, accounts and contacts.

Each handler checks the shape of the input with a serializer and calls one service of
``crm.services``; the rules (approval reset on a new address, who may approve, what
a deletion must keep) live there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Prefetch
from django.urls import path
from django_filters import rest_framework as filters
from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import APIView

from common.api.filters import (
    DateOrDateTimeFilter,
    IdFilter,
    NamedSearchFilter,
    StableOrderingFilter,
    StrictBooleanFilter,
    StrictFilterBackend,
)
from common.api.idempotency import idempotent
from common.api.parsers import JSONParser
from common.api.permissions import StaffForDeletes, StaffForWrites
from common.api.schema import IDEMPOTENCY_KEY, IDEMPOTENT, LOOKUP_ANY, errors
from common.api.throttling import LoginRateThrottle
from crm import services
from crm.models import Account, Contact, EmailApproval, Organization, OutgoingDelivery, Queue, User

from .permissions import CanApproveEmailAddresses
from .serializers import (
    AccountSerializer,
    ContactSerializer,
    OrganizationSerializer,
    QueueSerializer,
    TokenSerializer,
    UserSerializer,
)

if TYPE_CHECKING:
    from rest_framework.filters import BaseFilterBackend
    from rest_framework.generics import BaseFilterProtocol

    # What the mixin below is mixed into, so that its calls are checked.
    _GenericViewSet = viewsets.GenericViewSet[Any]
else:
    _GenericViewSet = object

FILTER_BACKENDS: list[type[BaseFilterBackend | BaseFilterProtocol[Any]]] = [
    StrictFilterBackend,
    NamedSearchFilter,
    StableOrderingFilter,
]

# --- Filters ---------------------------------------------------------------------


class UserFilter(filters.FilterSet):
    email_router_access_approval = filters.ChoiceFilter(choices=EmailApproval.choices[1:])
    outgoing_delivery = filters.ChoiceFilter(choices=OutgoingDelivery.choices)
    is_active = StrictBooleanFilter()

    class Meta:
        model = User
        fields = ["email_router_access_approval", "outgoing_delivery", "is_active"]


class QueueFilter(filters.FilterSet):
    email_router_access_approval = filters.ChoiceFilter(choices=EmailApproval.choices[1:])
    outgoing_delivery = filters.ChoiceFilter(choices=OutgoingDelivery.choices)
    members = IdFilter(field_name="members", distinct=True, help_text="queues with this member")

    class Meta:
        model = Queue
        fields = ["email_router_access_approval", "outgoing_delivery", "members"]


class AccountFilter(filters.FilterSet):
    city = filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Account
        fields = ["city"]


class ContactFilter(filters.FilterSet):
    account = IdFilter(field_name="account_id")
    city = filters.CharFilter(lookup_expr="iexact")
    tag = filters.CharFilter(field_name="tags__name", lookup_expr="iexact", distinct=True)
    email = filters.CharFilter(lookup_expr="iexact")
    do_not_email = StrictBooleanFilter()
    do_not_bulk_email = StrictBooleanFilter()
    created_after = DateOrDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateOrDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Contact
        fields = [
            "account",
            "city",
            "tag",
            "email",
            "do_not_email",
            "do_not_bulk_email",
            "created_after",
            "created_before",
        ]


# --- Users -----------------------------------------------------------------------


class _ApprovalActions(_GenericViewSet):
    """``{id}/approve/`` and ``{id}/reject/`` for users and queues.

    Their schema (summary, the record's serializer) is set on each viewset with
    ``approval_schema``.
    """

    @action(
        detail=True,
        methods=["post"],
        permission_classes=[IsAuthenticated, CanApproveEmailAddresses],
    )
    def approve(self, request, pk=None):
        return self._decide(request, services.email_address_approve)

    @action(
        detail=True,
        methods=["post"],
        permission_classes=[IsAuthenticated, CanApproveEmailAddresses],
    )
    def reject(self, request, pk=None):
        return self._decide(request, services.email_address_reject)

    def _decide(self, request, decide):
        target = self.get_object()
        decide(target=target, actor=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=target.pk)).data)


def approval_schema(kind: str, serializer) -> dict:
    """The schema of the approve/reject actions of a viewset of ``kind`` records."""
    responses = {200: serializer, **errors(400, 403, 404)}
    return {
        "approve": extend_schema(
            summary=f"Approve a {kind}'s email address", request=None, responses=responses
        ),
        "reject": extend_schema(
            summary=f"Reject a {kind}'s email address", request=None, responses=responses
        ),
    }


@extend_schema_view(
    **approval_schema("user", UserSerializer),
    list=extend_schema(summary="List users", responses={200: UserSerializer, **errors(400, 404)}),
    retrieve=extend_schema(summary="A user", responses={200: UserSerializer, **errors(404)}),
)
class UserViewSet(_ApprovalActions, viewsets.ReadOnlyModelViewSet):
    lookup_value_regex = LOOKUP_ANY
    parser_classes = [JSONParser]
    queryset = User.objects.all()
    serializer_class = UserSerializer
    filter_backends = FILTER_BACKENDS
    filterset_class = UserFilter
    search_fields = ["username", "email", "first_name", "last_name"]
    ordering_fields = ["id", "username", "email", "last_name", "first_name"]
    ordering = ["username"]


# --- Queues ----------------------------------------------------------------------


@extend_schema_view(
    **approval_schema("queue", QueueSerializer),
    list=extend_schema(summary="List queues", responses={200: QueueSerializer, **errors(400, 404)}),
    retrieve=extend_schema(summary="A queue", responses={200: QueueSerializer, **errors(404)}),
    create=extend_schema(
        summary="Create a queue (staff); its address starts pending approval",
        parameters=[IDEMPOTENCY_KEY],
        responses={201: QueueSerializer, **errors(*IDEMPOTENT, 403, 415)},
    ),
    partial_update=extend_schema(
        summary="Change a queue (staff); a new address goes back to pending approval",
        responses={200: QueueSerializer, **errors(400, 403, 404, 409, 415)},
    ),
    destroy=extend_schema(
        summary="Delete a queue (staff); a queue that has emails is kept (409)",
        responses={204: None, **errors(403, 404, 409)},
    ),
)
class QueueViewSet(_ApprovalActions, viewsets.ModelViewSet):
    lookup_value_regex = LOOKUP_ANY
    parser_classes = [JSONParser]
    # Members by id, so that the answer is the same on every database.
    queryset = Queue.objects.prefetch_related(
        Prefetch("members", queryset=User.objects.order_by("pk"))
    )
    serializer_class = QueueSerializer
    permission_classes = [IsAuthenticated, StaffForWrites]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filter_backends = FILTER_BACKENDS
    filterset_class = QueueFilter
    search_fields = ["name", "email"]
    ordering_fields = ["id", "name", "email", "created_at"]
    ordering = ["name"]

    def _answer(self, queue: Queue, code: int = status.HTTP_200_OK) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=queue.pk)).data, status=code)

    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        queue = services.queue_create(**serializer.validated_data, actor=request.user)
        return self._answer(queue, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        queue = self.get_object()
        serializer = self.get_serializer(queue, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        members = data.pop("members", None)
        services.queue_update(queue=queue, data=data, members=members, actor=request.user)
        return self._answer(queue)

    def destroy(self, request, *args, **kwargs):
        services.queue_delete(queue=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- The organisation --------------------------------------------------------------


class OrganizationView(APIView):
    """The organisation's settings (a single record)."""

    permission_classes = [IsAuthenticated, StaffForWrites]
    parser_classes = [JSONParser]
    serializer_class = OrganizationSerializer

    @extend_schema(
        summary="The organisation's settings", responses={200: OrganizationSerializer, **errors()}
    )
    def get(self, request):
        return Response(OrganizationSerializer(Organization.get()).data)

    @extend_schema(
        summary="Change the organisation's settings (staff)",
        request=OrganizationSerializer(partial=True),
        responses={200: OrganizationSerializer, **errors(400, 403, 415)},
    )
    def patch(self, request):
        serializer = OrganizationSerializer(Organization.get(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        org = services.organization_update(data=serializer.validated_data, actor=request.user)
        return Response(OrganizationSerializer(org).data)


# --- Accounts and contacts ---------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List accounts", responses={200: AccountSerializer, **errors(400, 404)}
    ),
    retrieve=extend_schema(summary="An account", responses={200: AccountSerializer, **errors(404)}),
    create=extend_schema(
        summary="Create an account",
        parameters=[IDEMPOTENCY_KEY],
        responses={201: AccountSerializer, **errors(*IDEMPOTENT, 403, 415)},
    ),
    partial_update=extend_schema(
        summary="Change an account",
        responses={200: AccountSerializer, **errors(400, 403, 404, 409, 415)},
    ),
    destroy=extend_schema(
        summary="Delete an account (staff); its contacts stay, without an account",
        responses={204: None, **errors(403, 404, 409)},
    ),
)
class AccountViewSet(viewsets.ModelViewSet):
    lookup_value_regex = LOOKUP_ANY
    parser_classes = [JSONParser]
    queryset = Account.objects.all()
    serializer_class = AccountSerializer
    permission_classes = [IsAuthenticated, StaffForDeletes]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filter_backends = FILTER_BACKENDS
    filterset_class = AccountFilter
    search_fields = ["name", "email", "city"]
    ordering_fields = ["id", "name", "city", "created_at"]
    ordering = ["name"]

    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account = services.account_save(account=Account(), data=serializer.validated_data)
        return Response(self.get_serializer(account).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        account = self.get_object()
        serializer = self.get_serializer(account, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.account_save(account=account, data=serializer.validated_data)
        return Response(self.get_serializer(account).data)

    def destroy(self, request, *args, **kwargs):
        services.account_delete(account=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="List contacts", responses={200: ContactSerializer, **errors(400, 404)}
    ),
    retrieve=extend_schema(summary="A contact", responses={200: ContactSerializer, **errors(404)}),
    create=extend_schema(
        summary="Create a contact; unknown tag names become new tags",
        parameters=[IDEMPOTENCY_KEY],
        responses={201: ContactSerializer, **errors(*IDEMPOTENT, 403, 415)},
    ),
    partial_update=extend_schema(
        summary="Change a contact; tags, when given, replace the contact's tags",
        responses={200: ContactSerializer, **errors(400, 403, 404, 409, 415)},
    ),
    destroy=extend_schema(
        summary="Delete a contact (staff)", responses={204: None, **errors(403, 404, 409)}
    ),
)
class ContactViewSet(viewsets.ModelViewSet):
    lookup_value_regex = LOOKUP_ANY
    parser_classes = [JSONParser]
    queryset = Contact.objects.prefetch_related("tags")
    serializer_class = ContactSerializer
    permission_classes = [IsAuthenticated, StaffForDeletes]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filter_backends = FILTER_BACKENDS
    filterset_class = ContactFilter
    search_fields = ["first_name", "last_name", "email", "city", "account__name"]
    ordering_fields = ["id", "last_name", "first_name", "email", "city", "created_at"]
    ordering = ["last_name", "first_name"]

    def _answer(self, contact: Contact, code: int = status.HTTP_200_OK) -> Response:
        return Response(
            self.get_serializer(self.get_queryset().get(pk=contact.pk)).data, status=code
        )

    def _save(self, contact: Contact, serializer) -> Contact:
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        tags = data.pop("tags", None)
        return services.contact_save(contact=contact, data=data, tags=tags)

    @idempotent
    def create(self, request, *args, **kwargs):
        contact = self._save(Contact(), self.get_serializer(data=request.data))
        return self._answer(contact, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        contact = self.get_object()
        self._save(contact, self.get_serializer(contact, data=request.data, partial=True))
        return self._answer(contact)

    def destroy(self, request, *args, **kwargs):
        services.contact_delete(contact=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- POST auth/token/ (DRF's view, documented here) ----------------------------------


class ObtainAuthTokenSchema(OpenApiViewExtension):
    """The schema of DRF's obtain-token view: it answers ``{"token"}``, or a 400."""

    target_class = "rest_framework.authtoken.views.ObtainAuthToken"
    match_subclasses = True
    priority = 1  # over drf-spectacular's own extension for this view

    def view_replacement(self):
        @extend_schema(
            summary="Get the API token of a user (username and password)",
            responses={200: TokenSerializer, **errors(400, 415)},
        )
        class DocumentedObtainAuthToken(ObtainAuthToken):  # self.target_class, resolved
            pass

        return DocumentedObtainAuthToken


class ObtainAuthTokenView(ObtainAuthToken):
    """DRF's obtain-token view, throttled per client address (DRF's own is not). The
    credentials are checked with Django's own request, so that sign-in limits
    (common.signin) count these attempts and refuse a locked user as the sign-in page does."""

    throttle_classes = [LoginRateThrottle]
    # DRF's view names its own parsers: the project's JSON parser (a nesting limit) instead.
    parser_classes = [FormParser, MultiPartParser, JSONParser]

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "request": self.request._request}


# --- Wiring ------------------------------------------------------------------------


def register(router: DefaultRouter) -> None:
    router.register("users", UserViewSet, basename="user")
    router.register("queues", QueueViewSet, basename="queue")
    router.register("accounts", AccountViewSet, basename="account")
    router.register("contacts", ContactViewSet, basename="contact")


def extra_urls() -> list:
    return [path("organization/", OrganizationView.as_view(), name="organization")]
