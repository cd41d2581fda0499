"""``SendBulkMail`` (unbound action): our bulk job (``bulk_send_start``), as
``POST /api/v1/bulk-sends/`` starts it.

Parameters as the Web API reference names them: ``Sender`` (a systemuser or queue:
``{"@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": "<guid>"}``,
or ``Sender@odata.bind``), ``TemplateId``, ``RegardingType`` + ``RegardingId`` (the
record every email is about; left out, null or the empty GUID: each email's own
contact) and ``Query`` (``compat.dynamics.queries``). The answer is Dataverse's: 204,
no body (the action returns no value); ``Location`` names the job in ``/api/v1/``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.db.models import Model
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from activities.records import RECORD_MODELS
from activities.selectors import templates_visible_to
from activities.services.bulk import bulk_send_start
from crm.api import signed_in_user
from crm.models import Queue, User

from .ids import pk_of
from .odata import DynamicsView, PayloadError, action_parameters
from .queries import bulk_query_of
from .views import TAG, documented

# Dataverse's entity names of the records we have, and ours.
RECORD_TYPES = {"contact": "contact", "account": "account", "systemuser": "user", "queue": "queue"}
SENDER_TYPES: dict[str, tuple[type[User] | type[Queue], str]] = {
    "systemuser": (User, "systemuserid"),
    "queue": (Queue, "queueid"),
}
PARAMETERS = {"Sender", "Sender@odata.bind", "TemplateId", "RegardingType", "RegardingId", "Query"}
_BIND = re.compile(r"^(?:.*/)?(?P<set>systemusers|queues)\((?P<key>[^()]*)\)$")
EMPTY_GUID = str(uuid.UUID(int=0))


def _guid(value: Any, name: str) -> int:
    if not isinstance(value, str):
        raise PayloadError(f"{name}: expected a GUID string, got {type(value).__name__}")
    try:
        uuid.UUID(value.strip().strip("{}"))
    except ValueError:
        raise PayloadError(f"{name}: {value!r} is not a GUID") from None
    return pk_of(value)


def _sender(data: dict[str, Any], actor: User) -> User | Queue:
    bind = data.get("Sender@odata.bind")
    if bind is not None:
        if not isinstance(bind, str) or not (match := _BIND.match(bind.strip())):
            raise PayloadError(
                f"Sender@odata.bind: {bind!r} is not /systemusers(<guid>) or /queues(<guid>)"
            )
        model: type[User] | type[Queue] = User if match["set"] == "systemusers" else Queue
        key = match["key"]
    else:
        sender = data.get("Sender")
        if sender is None:
            return actor
        if not isinstance(sender, dict):
            raise PayloadError("Sender: expected a systemuser or queue object")
        entity = str(sender.get("@odata.type", "")).removeprefix("#").rsplit(".", 1)[-1]
        if entity not in SENDER_TYPES:
            raise PayloadError(
                "Sender: @odata.type must be Microsoft.Dynamics.CRM.systemuser or "
                f"Microsoft.Dynamics.CRM.queue, got {sender.get('@odata.type')!r}"
            )
        model, key_name = SENDER_TYPES[entity]
        key = sender.get(key_name)
        if key is None:
            raise PayloadError(f"Sender: give {key_name}")
    record = model.objects.filter(pk=_guid(key, "Sender")).first()
    if record is None:
        raise Http404(f"Sender: no {model._meta.model_name} has the id {key}")
    return record


def _regarding(data: dict[str, Any]) -> Model | None:
    regarding_id, regarding_type = data.get("RegardingId"), data.get("RegardingType")
    if regarding_id in (None, "", EMPTY_GUID):
        return None
    if regarding_type not in RECORD_TYPES:
        raise PayloadError(
            f"RegardingType: expected one of {', '.join(RECORD_TYPES)}, got {regarding_type!r}"
        )
    record = (
        RECORD_MODELS[RECORD_TYPES[regarding_type]]
        .objects.filter(pk=_guid(regarding_id, "RegardingId"))
        .first()
    )
    if record is None:
        raise Http404(f"RegardingId: no {regarding_type} has the id {regarding_id}")
    return record


class SendBulkMailView(DynamicsView):
    @extend_schema(
        tags=[TAG],
        summary="SendBulkMail: a template to every contact a FetchXML or $filter selects",
        description=(
            "Starts a bulk job (as POST /api/v1/bulk-sends/). Query: "
            '{"@odata.type": "Microsoft.Dynamics.CRM.FetchExpression", "Query": "<fetch>..."} '
            "or a $filter string on contacts, limited to what a bulk job selects: "
            "parentcustomerid eq, address1_city eq, createdon ge/lt, statecode eq 0, joined "
            "by and. Anything else is a 400 naming the part."
        ),
        operation_id="dynamics_send_bulk_mail",
        request=OpenApiTypes.OBJECT,
        responses=documented(403, 409, ok=204),
    )
    def post(self, request: Request) -> Response:
        data = action_parameters(request, known=PARAMETERS, action="SendBulkMail")
        if "TemplateId" not in data:
            raise PayloadError("TemplateId: the template to send is required")
        actor = signed_in_user(request)
        template = templates_visible_to(actor).filter(pk=_guid(data["TemplateId"], "TemplateId"))
        template_row = template.first()
        if template_row is None:
            raise Http404(f"template With Id = {data['TemplateId']} Does Not Exist")
        query = bulk_query_of(data.get("Query"))
        job = bulk_send_start(
            template=template_row,
            sender=_sender(data, actor),
            query=query,
            regarding=_regarding(data),
            actor=actor,
        )
        response = Response(status=204)
        response["Location"] = request.build_absolute_uri(f"/api/v1/bulk-sends/{job.pk}/")
        return response
