"""``systemusers``, ``queues`` and ``organizations``: mailbox approval as Dataverse names it.

Reads show what ``/api/v1/users/``, ``queues/`` and ``organization/`` show (any
signed-in user sees every user and queue, and the settings). A PATCH of
``emailrouteraccessapproval`` is ``crm.services.email_address_approve`` or
``email_address_reject``, whose permission check (``crm.approve_email_address``, the
equivalent of Dataverse's prvApproveRejectEmailAddress) and signal are those of
``/api/v1/.../approve/``; the organisation's two approval settings go through
``organization_update`` (staff). Nothing else is written here.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model, Q, QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from common.errors import ValidationFailed
from crm import services
from crm.api import signed_in_user
from crm.models import EmailApproval, Organization, Queue, User

from .ids import guid_of, pk_of
from .odata import DynamicsView, ODataError, PayloadError, context_url, no_content, prefers
from .query import Filterable, FilterTranslator, bool_value, guid_value, int_value, text_value
from .views import GUID, TAG, documented

# Dataverse's emailrouteraccessapproval options.
APPROVAL_CODES = {
    EmailApproval.EMPTY: 0,
    EmailApproval.APPROVED: 1,
    EmailApproval.PENDING: 2,
    EmailApproval.REJECTED: 3,
}
APPROVAL_NAMES = {0: "Empty", 1: "Approved", 2: "Pending Approval", 3: "Rejected"}
APPROVAL_OF_CODE = {code: ours for ours, code in APPROVAL_CODES.items()}
MAX_PAGE = 5000  # Dataverse's default page size


def _approval_lookup(code: int) -> Q:
    if code not in APPROVAL_OF_CODE:
        raise ODataError(f"$filter: emailrouteraccessapproval is 0, 1, 2 or 3, not {code}")
    return Q(email_router_access_approval=APPROVAL_OF_CODE[code])


_APPROVAL = Filterable("email_router_access_approval", int_value, lookup=_approval_lookup)
USER_FILTER = FilterTranslator(
    entity="systemuser",
    properties={
        "systemuserid": Filterable("pk", guid_value),
        "domainname": Filterable("username", text_value),
        "internalemailaddress": Filterable(
            "email", text_value, lookup=lambda text: Q(email__iexact=text)
        ),
        "emailrouteraccessapproval": _APPROVAL,
        "isdisabled": Filterable("is_active", bool_value, lookup=lambda v: Q(is_active=not v)),
    },
)
QUEUE_FILTER = FilterTranslator(
    entity="queue",
    properties={
        "queueid": Filterable("pk", guid_value),
        "name": Filterable("name", text_value),
        "emailaddress": Filterable("email", text_value, lookup=lambda text: Q(email__iexact=text)),
        "emailrouteraccessapproval": _APPROVAL,
    },
)


def _user(user: User) -> dict[str, Any]:
    return {
        "systemuserid": guid_of(user.pk),
        "fullname": user.full_name,
        "firstname": user.first_name,
        "lastname": user.last_name,
        "domainname": user.get_username(),
        "internalemailaddress": user.email,
        "emailrouteraccessapproval": APPROVAL_CODES[
            EmailApproval(user.email_router_access_approval)
        ],
        "isdisabled": not user.is_active,
    }


def _queue(queue: Queue) -> dict[str, Any]:
    return {
        "queueid": guid_of(queue.pk),
        "name": queue.name,
        "emailaddress": queue.email,
        "emailrouteraccessapproval": APPROVAL_CODES[
            EmailApproval(queue.email_router_access_approval)
        ],
        "createdon": queue.created_at.isoformat().replace("+00:00", "Z"),
    }


def _organization(org: Organization) -> dict[str, Any]:
    return {
        "organizationid": guid_of(org.pk),
        "name": org.name,
        "requireapprovalforuseremail": org.require_approval_for_user_email,
        "requireapprovalforqueueemail": org.require_approval_for_queue_email,
        "modifiedon": org.modified_at.isoformat().replace("+00:00", "Z"),
    }


def select_of(request: Request, row: dict[str, Any], entity: str) -> dict[str, Any]:
    """``row`` cut to ``$select`` (the key always stays, as in Dataverse)."""
    select = request.query_params.get("$select")
    if not select:
        return row
    names = [name.strip() for name in select.split(",") if name.strip()]
    unknown = [name for name in names if name not in row]
    if unknown:
        raise ODataError(
            f"Could not find a property named '{unknown[0]}' on type "
            f"'Microsoft.Dynamics.CRM.{entity}'."
        )
    key = next(iter(row))
    return {name: value for name, value in row.items() if name == key or name in names}


def check_query_options(request: Request, allowed: tuple[str, ...]) -> None:
    for name in request.query_params:
        if name.startswith("$") and name not in allowed:
            raise ODataError(
                f"the query option {name} is not supported here (supported: {', '.join(allowed)})"
            )


def top_of(request: Request) -> int:
    raw = request.query_params.get("$top")
    if raw is None:
        return MAX_PAGE
    if not raw.isdigit() or not 0 < int(raw) <= MAX_PAGE:
        raise ODataError(f"$top: expected a whole number from 1 to {MAX_PAGE}, got {raw!r}")
    return int(raw)


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise PayloadError("expected a JSON object of the properties to change")
    return {k: v for k, v in request.data.items() if not k.startswith("@odata.")}


def _prefers_representation(request: Request) -> bool:
    return (prefers(request, "return") or "").lower() == "representation"


def one_of(queryset: QuerySet[Any], guid: str) -> Any:
    row = queryset.filter(pk=pk_of(guid)).first()
    if row is None:
        raise Http404(f"{queryset.model._meta.model_name} With Id = {guid} Does Not Exist")
    return row


class _MailboxView(DynamicsView):
    entity = ""
    entity_set = ""
    filter: FilterTranslator | None = None

    def queryset(self) -> QuerySet[Any]:
        raise NotImplementedError

    def shape(self, record: Any) -> dict[str, Any]:
        raise NotImplementedError

    def answer(self, request: Request, record: Model) -> Response:
        body = {
            "@odata.context": context_url(request, f"{self.entity_set}/$entity"),
            **select_of(request, self.shape(record), self.entity),
        }
        return Response(body)


class _MailboxList(_MailboxView):
    def get(self, request: Request) -> Response:
        check_query_options(request, ("$select", "$top", "$filter"))
        rows = self.queryset()
        text = request.query_params.get("$filter", "").strip()
        if text and self.filter is not None:
            rows = rows.filter(self.filter.translate(text))
        rows = rows[: top_of(request)]
        return Response(
            {
                "@odata.context": context_url(request, self.entity_set),
                "value": [select_of(request, self.shape(row), self.entity) for row in rows],
            }
        )


class _MailboxDetail(_MailboxView):
    def get(self, request: Request, guid: str) -> Response:
        check_query_options(request, ("$select",))
        return self.answer(request, one_of(self.queryset(), guid))

    def patch(self, request: Request, guid: str) -> Response:
        target = one_of(self.queryset(), guid)
        data = _body(request)
        other = sorted(set(data) - {"emailrouteraccessapproval"})
        if other:
            raise PayloadError(
                f"only emailrouteraccessapproval can be changed here, not {', '.join(other)}"
            )
        if "emailrouteraccessapproval" not in data:
            raise PayloadError("nothing to change: give emailrouteraccessapproval")
        value = data["emailrouteraccessapproval"]
        actor = signed_in_user(request)
        if value == 1 and not isinstance(value, bool):
            services.email_address_approve(target=target, actor=actor)
        elif value == 3 and not isinstance(value, bool):
            services.email_address_reject(target=target, actor=actor)
        elif value in (0, 2) and not isinstance(value, bool):
            raise ValidationFailed(
                f"emailrouteraccessapproval {value} ({APPROVAL_NAMES[value]}) cannot be set: "
                "an address becomes pending approval when it changes; set 1 (Approved) or 3 "
                "(Rejected)"
            )
        else:
            raise PayloadError(
                f"emailrouteraccessapproval: expected 1 (Approved) or 3 (Rejected), got {value!r}"
            )
        target.refresh_from_db()
        if _prefers_representation(request):
            return self.answer(request, target)
        return no_content(request, self.entity_set, target.pk)


class _Users:
    entity = "systemuser"
    entity_set = "systemusers"
    filter: FilterTranslator | None = USER_FILTER

    def queryset(self) -> QuerySet[User]:
        return User.objects.order_by("username")

    def shape(self, record: User) -> dict[str, Any]:
        return _user(record)


class _Queues:
    entity = "queue"
    entity_set = "queues"
    filter: FilterTranslator | None = QUEUE_FILTER

    def queryset(self) -> QuerySet[Queue]:
        return Queue.objects.order_by("name")

    def shape(self, record: Queue) -> dict[str, Any]:
        return _queue(record)


_READ = documented()
_PATCH = {**documented(403, 409, ok=204), 200: OpenApiResponse(OpenApiTypes.OBJECT)}


class SystemUserList(_Users, _MailboxList):
    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_systemusers_list",
        summary="systemusers: users and their address approval",
        responses=_READ,
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class SystemUserDetail(_Users, _MailboxDetail):
    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_systemuser_retrieve",
        parameters=[GUID],
        summary="systemusers(<guid>)",
        responses=_READ,
    )
    def get(self, request: Request, guid: str) -> Response:
        return super().get(request, guid)

    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_systemuser_update",
        parameters=[GUID],
        summary="Approve (1) or reject (3) a user's address: emailrouteraccessapproval",
        request=OpenApiTypes.OBJECT,
        responses=_PATCH,
    )
    def patch(self, request: Request, guid: str) -> Response:
        return super().patch(request, guid)


class QueueList(_Queues, _MailboxList):
    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_queues_list",
        summary="queues: queues and their address approval",
        responses=_READ,
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class QueueDetail(_Queues, _MailboxDetail):
    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_queue_retrieve",
        parameters=[GUID],
        summary="queues(<guid>)",
        responses=_READ,
    )
    def get(self, request: Request, guid: str) -> Response:
        return super().get(request, guid)

    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_queue_update",
        parameters=[GUID],
        summary="Approve (1) or reject (3) a queue's address: emailrouteraccessapproval",
        request=OpenApiTypes.OBJECT,
        responses=_PATCH,
    )
    def patch(self, request: Request, guid: str) -> Response:
        return super().patch(request, guid)


# organizations' writable properties -> crm.services.ORGANIZATION_FIELDS
ORGANIZATION_WRITABLE = {
    "requireapprovalforuseremail": "require_approval_for_user_email",
    "requireapprovalforqueueemail": "require_approval_for_queue_email",
}


class OrganizationList(DynamicsView):
    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_organizations_list",
        summary="organizations: the one organisation",
        responses=_READ,
    )
    def get(self, request: Request) -> Response:
        check_query_options(request, ("$select", "$top"))
        top_of(request)
        return Response(
            {
                "@odata.context": context_url(request, "organizations"),
                "value": [select_of(request, _organization(Organization.get()), "organization")],
            }
        )


class OrganizationDetail(DynamicsView):
    def _org(self, guid: str) -> Organization:
        if pk_of(guid) != Organization.SINGLETON_ID:
            raise Http404(f"organization With Id = {guid} Does Not Exist")
        return Organization.get()

    def _answer(self, request: Request, org: Organization) -> Response:
        return Response(
            {
                "@odata.context": context_url(request, "organizations/$entity"),
                **select_of(request, _organization(org), "organization"),
            }
        )

    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_organization_retrieve",
        parameters=[GUID],
        summary="organizations(<guid>)",
        responses=_READ,
    )
    def get(self, request: Request, guid: str) -> Response:
        check_query_options(request, ("$select",))
        return self._answer(request, self._org(guid))

    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_organization_update",
        parameters=[GUID],
        summary="Change requireapprovalforuseremail / requireapprovalforqueueemail (staff)",
        request=OpenApiTypes.OBJECT,
        responses=_PATCH,
    )
    def patch(self, request: Request, guid: str) -> Response:
        self._org(guid)
        data = _body(request)
        other = sorted(set(data) - set(ORGANIZATION_WRITABLE))
        if other:
            raise PayloadError(
                f"only {', '.join(ORGANIZATION_WRITABLE)} can be changed here, not "
                f"{', '.join(other)}"
            )
        for name, value in data.items():
            if not isinstance(value, bool):
                raise PayloadError(f"{name}: expected true or false, got {value!r}")
        org = services.organization_update(
            data={ORGANIZATION_WRITABLE[name]: value for name, value in data.items()},
            actor=signed_in_user(request),
        )
        if _prefers_representation(request):
            return self._answer(request, org)
        return no_content(request, "organizations", org.pk)


@extend_schema(tags=[TAG])
class WhoAmIView(DynamicsView):
    """``WhoAmI()``: the signed-in user, and the organization as its one business unit
    (we have no business units)."""

    @extend_schema(
        operation_id="dynamics_who_am_i",
        summary="WhoAmI: the caller's systemuserid and the organization's id",
        responses=documented(),
    )
    def get(self, request: Request) -> Response:
        check_query_options(request, ())
        organization = guid_of(Organization.SINGLETON_ID)
        return Response(
            {
                "@odata.context": context_url(request, "Microsoft.Dynamics.CRM.WhoAmIResponse"),
                "BusinessUnitId": organization,
                "UserId": guid_of(signed_in_user(request).pk),
                "OrganizationId": organization,
            }
        )


class WhoAmIWithoutParentheses(WhoAmIView):
    """``WhoAmI`` as some clients call it; the schema shows ``WhoAmI()`` only."""

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        return super().get(request)
