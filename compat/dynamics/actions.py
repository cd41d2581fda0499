"""The SendEmail family of actions: each one service call of ``activities``.

Bound: ``emails(<guid>)/Microsoft.Dynamics.CRM.SendEmail``. Unbound:
``SendEmailFromTemplate``, ``InstantiateTemplate``, ``BackgroundSendEmail`` (the claim
of an external send component) and ``GetTrackingTokenEmail``. Parameters are checked
for shape and type here (a 400 naming the parameter); the rules are the services'.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import models
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from activities.models import Email
from activities.selectors import email_list_queryset, templates_visible_to
from activities.services.claim import MAX_CLAIM_BATCH, email_claim_batch
from activities.services.emails import email_send, email_send_from_template
from activities.services.templates import template_render
from crm.api import signed_in_user
from crm.models import Organization

from .entities import NS, RECORD_SETS, email_changes, email_entity
from .ids import guid_of, pk_of
from .odata import DynamicsView, PayloadError, RecordNotFound, action_parameters, context_url
from .schema import (
    BackgroundSendEmailBody,
    GetTrackingTokenEmailBody,
    InstantiateTemplateBody,
    SendEmailBody,
    SendEmailFromTemplateBody,
)
from .views import GUID, TAG, documented, visible_email

LOGICAL_MODELS: dict[str, type[models.Model]] = {
    logical: model for logical, model in RECORD_SETS.values()
}


def _bool_param(body: dict[str, Any], name: str, *, default: bool | None = None) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise PayloadError(f"{name} must be true or false")
    return value


def _text_param(body: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise PayloadError(f"the parameter {name} is required")
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string, not {type(value).__name__}")
    return value


def _template(request: Request, body: dict[str, Any]):
    guid = _text_param(body, "TemplateId", required=True)
    template = templates_visible_to(request.user).filter(pk=pk_of(guid)).first()
    if template is None:
        raise RecordNotFound(f"template With Id = {guid} Does Not Exist")
    return template


def _record(logical: str, guid: str, *, param: str) -> models.Model:
    model = LOGICAL_MODELS.get(logical)
    if model is None:
        raise PayloadError(
            f"{param}: {logical!r} is not a record type an email can be regarding "
            f"({', '.join(LOGICAL_MODELS)})"
        )
    record = model._default_manager.filter(pk=pk_of(guid)).first()
    if record is None:
        raise RecordNotFound(f"{logical} With Id = {guid} Does Not Exist")
    return record


def _entity_record(value: Any, *, param: str) -> models.Model | None:
    """A ``crmbaseentity`` parameter: ``{"@odata.type": "Microsoft.Dynamics.CRM.contact",
    "contactid": "<guid>"}``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PayloadError(f"{param} must be an entity object with @odata.type")
    kind = value.get("@odata.type")
    if not isinstance(kind, str):
        raise PayloadError(f"{param} needs @odata.type, e.g. Microsoft.Dynamics.CRM.contact")
    logical = kind.lstrip("#").removeprefix(f"{NS}.")
    key = value.get(f"{logical}id")
    if not isinstance(key, str):
        raise PayloadError(f"{param} needs its key, {logical}id (a GUID)")
    return _record(logical, key, param=param)


def _response_context(request: Request, name: str) -> str:
    return context_url(request, f"{NS}.{name}")


@extend_schema(tags=[TAG], parameters=[GUID])
class SendEmailView(DynamicsView):
    """``emails(<guid>)/Microsoft.Dynamics.CRM.SendEmail``: ``IssueSend``, ``TrackingToken`` -> ``{"Subject"}``."""

    @extend_schema(
        operation_id="dynamics_send_email",
        summary="SendEmail: send (IssueSend true) or mark as sent (IssueSend false)",
        request=SendEmailBody,
        responses=documented(403, 409),
    )
    def post(self, request: Request, guid: str) -> Response:
        body = action_parameters(request, known={"IssueSend", "TrackingToken"})
        email = visible_email(request, guid)
        result = email_send(
            email=email,
            actor=signed_in_user(request),
            issue_send=_bool_param(body, "IssueSend", default=True),
            tracking_token=_text_param(body, "TrackingToken") or None,
        )
        return Response(
            {
                "@odata.context": _response_context(request, "SendEmailResponse"),
                "Subject": result.subject,
            }
        )


@extend_schema(tags=[TAG])
class SendEmailFromTemplateView(DynamicsView):
    """``SendEmailFromTemplate``: ``TemplateId``, ``Regarding``, ``Target`` (an email with its parties) -> the email."""

    @extend_schema(
        operation_id="dynamics_send_email_from_template",
        summary="SendEmailFromTemplate: create from a template and send",
        request=SendEmailFromTemplateBody,
        responses=documented(403, 409),
    )
    def post(self, request: Request) -> Response:
        body = action_parameters(request, known={"TemplateId", "Regarding", "Target"})
        template = _template(request, body)
        regarding = _entity_record(body.get("Regarding"), param="Regarding")
        target = body.get("Target")
        if not isinstance(target, dict):
            raise PayloadError("Target must be an email entity (with email_activity_parties)")
        target = {k: v for k, v in target.items() if k != "@odata.type"}
        kind = body["Target"].get("@odata.type", f"{NS}.email")
        if not isinstance(kind, str) or kind.lstrip("#") != f"{NS}.email":
            raise PayloadError(f"Target must be a {NS}.email entity, not {kind!r}")
        changes = email_changes(target, creating=True)
        ignored = set(changes) - {"sender", "to", "cc", "bcc"}
        if ignored:
            raise PayloadError(
                "Target: the template writes the subject and body; give only email_activity_parties"
            )
        email = email_send_from_template(
            template=template,
            actor=signed_in_user(request),
            regarding=regarding,
            sender=changes.get("sender"),
            to=changes.get("to", ()),
            cc=changes.get("cc", ()),
            bcc=changes.get("bcc", ()),
        )
        loaded = email_list_queryset(Email.objects.filter(pk=email.pk)).get()
        return Response(
            {"@odata.context": context_url(request, "emails/$entity"), **email_entity(loaded)}
        )


@extend_schema(tags=[TAG])
class InstantiateTemplateView(DynamicsView):
    """``InstantiateTemplate``: ``TemplateId``, ``ObjectType``, ``ObjectId`` -> a collection of one unsaved email."""

    @extend_schema(
        operation_id="dynamics_instantiate_template",
        summary="InstantiateTemplate: an email rendered from a template, not saved",
        request=InstantiateTemplateBody,
        responses=documented(),
    )
    def post(self, request: Request) -> Response:
        body = action_parameters(request, known={"TemplateId", "ObjectType", "ObjectId"})
        template = _template(request, body)
        regarding = _record(
            _text_param(body, "ObjectType", required=True),
            _text_param(body, "ObjectId", required=True),
            param="ObjectType",
        )
        rendered = template_render(
            template=template, regarding=regarding, sender=signed_in_user(request)
        )
        email = {
            "@odata.type": f"#{NS}.email",
            "subject": rendered.subject,
            "description": rendered.body_html,
            "_templateid_value": guid_of(template.pk),
            "_regardingobjectid_value": guid_of(regarding.pk),
        }
        return Response({"@odata.context": context_url(request, "emails"), "value": [email]})


@extend_schema(tags=[TAG])
class BackgroundSendEmailView(DynamicsView):
    """``BackgroundSendEmail``: ``Query`` (``PageInfo.Count``) -> ``EntityCollection`` and ``HasAttachments``:
    the claim of ``/api/v1/emails/claim/``. Each email's ``@odata.etag`` carries its lease:
    the outcome is reported by updating ``statuscode`` with ``If-Match`` set to it."""

    @extend_schema(
        operation_id="dynamics_background_send_email",
        summary="BackgroundSendEmail: claim pending emails for an external send component",
        request=BackgroundSendEmailBody,
        responses=documented(),
    )
    def post(self, request: Request) -> Response:
        body = action_parameters(request, known={"Query"})
        max_count = 50
        query = body.get("Query")
        if query is not None:
            if not isinstance(query, dict):
                raise PayloadError("Query must be a QueryExpression object")
            unread = set(query) - {"@odata.type", "EntityName", "PageInfo"}
            if unread:
                raise PayloadError(
                    f"Query: only EntityName and PageInfo.Count are read, not "
                    f"{', '.join(sorted(map(str, unread)))} (conditions are not applied)"
                )
            kind = query.get("@odata.type")
            if kind is not None and not isinstance(kind, str):
                raise PayloadError("Query: @odata.type must be a string")
            entity_name = query.get("EntityName", "email")
            if entity_name != "email":
                raise PayloadError(f"Query: BackgroundSendEmail claims emails, not {entity_name!r}")
            page = query.get("PageInfo")
            if page is None:
                page = {}
            if not isinstance(page, dict):
                raise PayloadError('Query.PageInfo must be an object ({"Count": n})')
            if set(page) - {"Count"}:
                raise PayloadError("Query.PageInfo: only Count is read")
            count = page.get("Count", max_count)
            if (
                isinstance(count, bool)
                or not isinstance(count, int)
                or not 1 <= count <= MAX_CLAIM_BATCH
            ):
                raise PayloadError(
                    f"Query.PageInfo.Count must be a whole number from 1 to {MAX_CLAIM_BATCH}"
                )
            max_count = count
        claimed = email_claim_batch(actor=signed_in_user(request), max_count=max_count)
        by_id = email_list_queryset(Email.objects.filter(pk__in=[e.pk for e in claimed])).in_bulk()
        emails = [by_id[e.pk] for e in claimed if e.pk in by_id]
        return Response(
            {
                "@odata.context": _response_context(request, "BackgroundSendEmailResponse"),
                "EntityCollection": [
                    email_entity(e, expand=("email_activity_parties",)) for e in emails
                ],
                "HasAttachments": [bool(e.attachments.all()) for e in emails],
            }
        )


@extend_schema(tags=[TAG])
class GetTrackingTokenEmailView(DynamicsView):
    """``GetTrackingTokenEmail``: ``Subject`` -> ``TrackingToken``: the token the subject carries, or
    ``""`` (SendEmail then gives the email its own)."""

    @extend_schema(
        operation_id="dynamics_get_tracking_token_email",
        summary="GetTrackingTokenEmail: the tracking token a subject carries",
        request=GetTrackingTokenEmailBody,
        responses=documented(),
    )
    def post(self, request: Request) -> Response:
        body = action_parameters(
            request,
            known={"Subject"},
        )
        subject = _text_param(body, "Subject")
        org = Organization.get()
        token = ""
        if org.use_tracking_token and org.tracking_token_prefix:
            found = re.search(rf"{re.escape(org.tracking_token_prefix)}:\d+", subject)
            token = found.group(0) if found else ""
        return Response(
            {
                "@odata.context": _response_context(request, "GetTrackingTokenEmailResponse"),
                "TrackingToken": token,
            }
        )
