"""The ``emails`` and ``activitymimeattachments`` entity sets.

Thin views, as ``/api/v1/``'s: every query starts from ``emails_visible_to`` /
``attachments_visible_to`` (a record the caller may not see is a 404), every change is
one service call, and the services' refusals come back in the OData error shape.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from activities.errors import ValidationFailed
from activities.models import ActivityMimeAttachment, AttachmentBlob, Email, EmailStatus, Template
from activities.selectors import (
    attachments_visible_to,
    email_list_queryset,
    emails_visible_to,
    templates_visible_to,
)
from activities.services.attachments import (
    attachment_delete,
    attachment_from_blob,
    attachment_store,
)
from activities.services.blobs import blob_open_verified
from activities.services.claim import email_report_delivery
from activities.services.emails import email_cancel, email_create, email_delete, email_update
from activities.uploads import base64_chunks, check_request_size
from crm.api import signed_in_user
from crm.models import Organization

from .entities import (
    ATTACHMENT_ENTITY,
    ATTACHMENT_PROPERTIES,
    EMAIL_EXPANDABLE,
    EMAIL_ORDERING,
    EMAIL_PROPERTIES,
    ENTITY,
    PRIORITY_OF_CODE,
    STATE_OF_CODE,
    STATUSES_OF_CODE,
    attachment_entity,
    email_changes,
    email_entity,
    email_etag,
    encode_body,
    lease_token_of_etag,
)
from .ids import guid_of, pk_of
from .odata import (
    DynamicsView,
    ODataError,
    PayloadError,
    PreconditionFailed,
    RecordNotFound,
    UnknownProperty,
    context_url,
    entity_url,
    no_content,
    parse_bind,
    prefers,
)
from .query import (
    Filterable,
    FilterTranslator,
    bool_value,
    check_options,
    datetime_value,
    guid_value,
    int_value,
    next_link,
    paginate,
    parse_orderby,
    parse_select,
    text_value,
)
from .schema import AttachmentBody, EmailBody

TAG = "Dynamics 365 Web API"
GUID = OpenApiParameter("guid", str, OpenApiParameter.PATH, description="the record's GUID")


def documented(*statuses: int, ok: int = 200) -> dict[int, Any]:
    """``responses`` for the schema: the success and the OData errors."""
    error = OpenApiResponse(
        OpenApiTypes.OBJECT, description='OData error: {"error": {"code", "message"}}'
    )
    answers: dict[int, Any] = {ok: OpenApiResponse(OpenApiTypes.OBJECT)}
    if ok == 204:
        answers[204] = OpenApiResponse(description="done; OData-EntityId names the record")
    for status in (400, 401, 404, 415, 429, *statuses):
        answers[status] = error
    return answers


def wants_representation(request: Request) -> bool:
    return (prefers(request, "return") or "").lower() == "representation"


# --- $filter over emails --------------------------------------------------------------


def _status_lookup(code: int) -> Q:
    return Q(status__in=STATUSES_OF_CODE.get(code, []))


def _state_lookup(code: int) -> Q:
    return Q(state=STATE_OF_CODE.get(code, "none"))


def _direction_lookup(outgoing: bool) -> Q:
    return Q(direction="outgoing" if outgoing else "incoming")


def _priority_lookup(code: int) -> Q:
    return Q(priority=PRIORITY_OF_CODE.get(code, "none"))


def _regarding_lookup(pk: int | None) -> Q:
    return Q(regarding_id__isnull=True) if pk is None else Q(regarding_id=pk)


EMAIL_FILTER = FilterTranslator(
    entity=ENTITY,
    properties={
        "activityid": Filterable("pk", guid_value),
        "subject": Filterable("subject", text_value),
        "trackingtoken": Filterable("tracking_token", text_value),
        "messageid": Filterable("message_id", text_value),
        "sender": Filterable("from_address", text_value),
        "statuscode": Filterable("status", int_value, lookup=_status_lookup),
        "statecode": Filterable("state", int_value, lookup=_state_lookup),
        "directioncode": Filterable("direction", bool_value, lookup=_direction_lookup),
        "prioritycode": Filterable("priority", int_value, lookup=_priority_lookup),
        "readreceiptrequested": Filterable("request_read_receipt", bool_value),
        "deliveryreceiptrequested": Filterable("request_delivery_receipt", bool_value),
        "createdon": Filterable("created_at", datetime_value, ordered=True),
        "modifiedon": Filterable("modified_at", datetime_value, ordered=True),
        "senton": Filterable("sent_at", datetime_value, ordered=True),
        "_regardingobjectid_value": Filterable(
            "regarding_id", guid_value, lookup=_regarding_lookup
        ),
    },
)


def parse_expand(request: Request, *, allowed: tuple[str, ...], entity: str) -> list[str]:
    text = request.query_params.get("$expand", "")
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name.split("(", 1)[0] not in allowed:
            raise ODataError(
                f"$expand: {name!r} cannot be expanded on {entity}; "
                f"supported: {', '.join(allowed) or 'nothing'}"
            )
        if "(" in name:
            raise ODataError("$expand: options inside $expand are not supported")
    return names


def visible_email(request: Request, guid: str) -> Email:
    email = email_list_queryset(emails_visible_to(request.user)).filter(pk=pk_of(guid)).first()
    if email is None:
        raise RecordNotFound(f"email With Id = {guid} Does Not Exist")
    return email


def fresh_email(pk: int) -> Email:
    return email_list_queryset(Email.objects.filter(pk=pk)).get()


# --- emails ---------------------------------------------------------------------------


@extend_schema(tags=[TAG])
class EmailsView(DynamicsView):
    """``/emails``: list (OData query options) and create (deep insert of parties)."""

    @extend_schema(
        operation_id="dynamics_emails_list",
        summary="List emails (OData $select, $filter, $orderby, $top, $expand, paging)",
        responses=documented(),
    )
    def get(self, request: Request) -> Response:
        check_options(request)
        select = parse_select(request, entity=ENTITY, known=EMAIL_PROPERTIES)
        expand = parse_expand(request, allowed=EMAIL_EXPANDABLE, entity=ENTITY)
        emails: QuerySet[Email] = emails_visible_to(request.user)
        if request.query_params.get("$filter", "").strip():
            emails = emails.filter(EMAIL_FILTER.translate(request.query_params["$filter"]))
        ordering = parse_orderby(request, entity=ENTITY, fields=EMAIL_ORDERING)
        if ordering == ["-pk"]:
            ordering = ["-created_at", "-pk"]
        page = paginate(request, email_list_queryset(emails).order_by(*ordering))
        fragment = f"emails({','.join(select)})" if select else "emails"
        body: dict[str, Any] = {"@odata.context": context_url(request, fragment)}
        if page.count is not None:
            body["@odata.count"] = page.count
        body["value"] = [email_entity(e, select=select, expand=expand) for e in page.items]
        if page.next_offset is not None:
            body["@odata.nextLink"] = next_link(request, page.next_offset)
        return Response(body)

    @extend_schema(
        operation_id="dynamics_emails_create",
        summary="Create an email (a draft), with its activity parties",
        request=EmailBody,
        responses={**documented(403, 409, ok=204), 201: OpenApiResponse(OpenApiTypes.OBJECT)},
    )
    def post(self, request: Request) -> Response:
        body = request.data
        changes = email_changes(body, creating=True)
        status = body.get("statuscode") if isinstance(body, dict) else None
        if status not in (None, 1):
            raise PayloadError(
                "statuscode: an email is created as a draft (1); send it with SendEmail"
            )
        email = email_create(actor=signed_in_user(request), **changes)
        if wants_representation(request):
            response = Response(email_entity(fresh_email(email.pk)), status=201)
            response["OData-EntityId"] = entity_url(request, "emails", email.pk)
            return response
        return no_content(request, "emails", email.pk)


@extend_schema(tags=[TAG], parameters=[GUID])
class EmailView(DynamicsView):
    """``/emails(<guid>)``: retrieve, update (also the outcome of a claim), delete."""

    @extend_schema(
        operation_id="dynamics_email_retrieve",
        summary="Retrieve an email",
        responses=documented(),
    )
    def get(self, request: Request, guid: str) -> Response:
        check_options(request)
        select = parse_select(request, entity=ENTITY, known=EMAIL_PROPERTIES)
        expand = parse_expand(request, allowed=EMAIL_EXPANDABLE, entity=ENTITY)
        email = visible_email(request, guid)
        body = {
            "@odata.context": context_url(request, "emails/$entity"),
            **email_entity(email, select=select, expand=expand),
        }
        response = Response(body)
        response["ETag"] = body["@odata.etag"]
        return response

    @extend_schema(
        operation_id="dynamics_email_update",
        summary="Update a draft or failed email; statuscode 3/8 reports a claimed email",
        request=EmailBody,
        responses=documented(403, 409, 412, ok=204),
    )
    def patch(self, request: Request, guid: str) -> Response:
        email = visible_email(request, guid)
        body = request.data
        if not isinstance(body, dict):
            raise PayloadError("the request body must be a JSON object (an email entity)")
        if_match = request.headers.get("If-Match", "").strip()
        actor = signed_in_user(request)
        if "statuscode" in body:
            self._set_status(email, body, if_match=if_match)
        else:
            if if_match and if_match != "*" and if_match != email_etag(email):
                raise PreconditionFailed(
                    "The version of the existing record doesn't match the If-Match header"
                )
            changes = email_changes(body, creating=False)
            if changes:
                email_update(email=email, actor=actor, **changes)
        if wants_representation(request):
            return Response(email_entity(fresh_email(email.pk)))
        return no_content(request, "emails", email.pk)

    def _set_status(self, email: Email, body: dict[str, Any], *, if_match: str) -> None:
        """statuscode 3 (Sent) or 8 (Failed) on a claimed email: the external sender's
        report, fenced by the lease in the etag BackgroundSendEmail answered;
        5 (Canceled): cancel. Anything else is done by an action, not a PATCH."""
        actor = signed_in_user(self.request)
        code = body["statuscode"]
        extra = set(body) - {"statuscode", "statecode", "messageid", "@odata.etag"}
        if extra:
            raise PayloadError(
                f"statuscode is changed on its own (with statecode, messageid), not with "
                f"{', '.join(sorted(extra))}"
            )
        if code in (3, 8):
            if email.status != EmailStatus.SENDING:
                raise PayloadError(
                    f"statuscode {code} reports the outcome of a claimed email (statuscode 7, "
                    f"Sending); this one is {email.status}: send it with SendEmail"
                )
            token = lease_token_of_etag(if_match) if if_match else None
            if token is None:
                raise PreconditionFailed(
                    "send If-Match with the @odata.etag that BackgroundSendEmail answered "
                    "for this email: it carries the lease"
                )
            message_id = body.get("messageid")
            message_id = "" if message_id is None else message_id
            if not isinstance(message_id, str):
                raise PayloadError("messageid must be a string")
            email_report_delivery(
                email=email,
                actor=actor,
                lease_token=token,
                outcome="sent" if code == 3 else "failed",
                message_id=message_id,
            )
            return
        if code == 5:
            email_cancel(email=email, actor=actor)
            return
        raise PayloadError(
            f"statuscode {code!r} cannot be set by an update: 3 (Sent) and 8 (Failed) report "
            "a claimed email, 5 cancels; SendEmail sends or marks as sent"
        )

    @extend_schema(
        operation_id="dynamics_email_delete",
        summary="Delete an email",
        responses=documented(403, 409, ok=204),
    )
    def delete(self, request: Request, guid: str) -> Response:
        email_delete(email=visible_email(request, guid), actor=signed_in_user(request))
        return Response(status=204)


# --- attachments ----------------------------------------------------------------------


def _attachment_owner(request: Request, body: dict[str, Any]) -> Email | Template:
    binds = {
        "objectid_email@odata.bind": ("emails",),
        "objectid_activitypointer@odata.bind": ("activitypointers", "emails"),
        "objectid_template@odata.bind": ("templates",),
    }
    given = [key for key in binds if key in body]
    if len(given) != 1:
        raise PayloadError(
            "name the attachment's email or template: objectid_email@odata.bind, "
            "objectid_activitypointer@odata.bind or objectid_template@odata.bind"
        )
    key = given[0]
    entity_set, pk = parse_bind(body[key], prop=key)
    if entity_set not in binds[key]:
        raise PayloadError(f"{key}: expected a reference to {binds[key][0]}, not {entity_set}")
    kind = "template" if key == "objectid_template@odata.bind" else "email"
    code = body.get("objecttypecode")
    if code is not None and code != kind:
        raise PayloadError(f"objecttypecode {code!r} does not match {key} ({kind})")
    owner: Email | Template | None
    if kind == "email":
        owner = (
            emails_visible_to(request.user)
            .select_related("sender_user", "sender_queue")
            .filter(pk=pk)
            .first()
        )
    else:
        owner = templates_visible_to(request.user).filter(pk=pk).first()
    if owner is None:
        raise RecordNotFound(f"{kind} With Id = {guid_of(pk)} Does Not Exist")
    return owner


_ATTACHMENT_WRITABLE = {
    "objectid_email@odata.bind",
    "objectid_activitypointer@odata.bind",
    "objectid_template@odata.bind",
    "attachmentid@odata.bind",
    "objecttypecode",
    "filename",
    "mimetype",
    "body",
    "subject",
    "@odata.type",
}


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"{name} must be a string, not {type(value).__name__}")
    return value


ATTACHMENT_FILTER = FilterTranslator(
    entity=ATTACHMENT_ENTITY,
    properties={
        "activitymimeattachmentid": Filterable("pk", guid_value),
        "filename": Filterable("filename", text_value),
        "mimetype": Filterable("mime_type", text_value),
        "objecttypecode": Filterable(
            "email",
            text_value,
            lookup=lambda kind: Q(
                email__isnull=kind != "email", template__isnull=kind != "template"
            ),
        ),
        "_objectid_value": Filterable(
            "email_id", guid_value, lookup=lambda pk: Q(email_id=pk) | Q(template_id=pk)
        ),
        "_attachmentid_value": Filterable("blob_id", guid_value),
    },
)
ATTACHMENT_ORDERING = {
    "filename": "filename",
    "attachmentnumber": "position",
    "activitymimeattachmentid": "pk",
}


@extend_schema(tags=[TAG])
class AttachmentsView(DynamicsView):
    """``/activitymimeattachments``: list and create (bytes, or an existing file)."""

    def check_input(self, request: Request) -> None:
        # Before the body is read: a body too large for any attachment is refused unread.
        if request.method == "POST":
            check_request_size(request, limit=Organization.get().max_attachment_bytes)
        super().check_input(request)

    @extend_schema(
        operation_id="dynamics_attachments_list",
        summary="List attachments",
        responses=documented(),
    )
    def get(self, request: Request) -> Response:
        check_options(request)
        select = parse_select(request, entity=ATTACHMENT_ENTITY, known=ATTACHMENT_PROPERTIES)
        if select and "body" in select:
            raise ODataError("body is given when one attachment is retrieved, not in a list")
        parse_expand(request, allowed=(), entity=ATTACHMENT_ENTITY)
        attachments = attachments_visible_to(request.user).select_related("blob")
        if request.query_params.get("$filter", "").strip():
            attachments = attachments.filter(
                ATTACHMENT_FILTER.translate(request.query_params["$filter"])
            )
        ordering = parse_orderby(request, entity=ATTACHMENT_ENTITY, fields=ATTACHMENT_ORDERING)
        page = paginate(request, attachments.order_by(*ordering))
        body: dict[str, Any] = {"@odata.context": context_url(request, "activitymimeattachments")}
        if page.count is not None:
            body["@odata.count"] = page.count
        body["value"] = [attachment_entity(a, select=select, body=None) for a in page.items]
        if page.next_offset is not None:
            body["@odata.nextLink"] = next_link(request, page.next_offset)
        return Response(body)

    @extend_schema(
        operation_id="dynamics_attachments_create",
        summary="Attach a file to a draft email or a template (body, or attachmentid to reuse)",
        request=AttachmentBody,
        responses={
            **documented(403, 409, 413, ok=204),
            201: OpenApiResponse(OpenApiTypes.OBJECT),
        },
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise PayloadError("the request body must be a JSON object (an activitymimeattachment)")
        for name in body:
            if name not in _ATTACHMENT_WRITABLE:
                raise UnknownProperty(name.split("@", 1)[0], ATTACHMENT_ENTITY)
        owner = _attachment_owner(request, body)
        filename = _optional_text(body, "filename")
        mime_type = _optional_text(body, "mimetype")
        subject = _optional_text(body, "subject") or ""
        content = _optional_text(body, "body")
        actor = signed_in_user(request)
        if "attachmentid@odata.bind" in body:
            if content is not None:
                raise PayloadError("give body or attachmentid@odata.bind, not both")
            entity_set, blob_pk = parse_bind(
                body["attachmentid@odata.bind"], prop="attachmentid@odata.bind"
            )
            if entity_set != "attachments":
                raise PayloadError(
                    f"attachmentid@odata.bind: expected a reference to attachments, not {entity_set}"
                )
            sha256 = AttachmentBlob.objects.filter(pk=blob_pk).values_list("sha256", flat=True)
            try:
                attachment = attachment_from_blob(
                    owner=owner,
                    sha256=sha256.first() or "",
                    filename=filename,
                    mime_type=mime_type,
                    subject=subject,
                    actor=actor,
                )
            except ValidationFailed as exc:
                if exc.code != "unknown_attachment_id":
                    raise
                # Named by its GUID: the SHA-256 of bytes the caller may not see stays ours.
                raise RecordNotFound(
                    f"attachment With Id = {guid_of(blob_pk)} Does Not Exist"
                ) from None
        else:
            if content is None or not filename:
                raise PayloadError(
                    "an attachment needs filename and body (base64), or "
                    "attachmentid@odata.bind naming an existing attachment"
                )
            attachment, _ = attachment_store(
                owner=owner,
                source=base64_chunks(content),
                filename=filename,
                mime_type=mime_type,
                subject=subject,
                actor=actor,
            )
        if wants_representation(request):
            response = Response(attachment_entity(attachment, body=None), status=201)
            response["OData-EntityId"] = entity_url(
                request, "activitymimeattachments", attachment.pk
            )
            return response
        return no_content(request, "activitymimeattachments", attachment.pk)


def visible_attachment(request: Request, guid: str) -> ActivityMimeAttachment:
    attachment = (
        attachments_visible_to(request.user)
        .select_related("blob", "email", "template")
        .filter(pk=pk_of(guid))
        .first()
    )
    if attachment is None:
        raise RecordNotFound(f"activitymimeattachment With Id = {guid} Does Not Exist")
    return attachment


@extend_schema(tags=[TAG], parameters=[GUID])
class AttachmentView(DynamicsView):
    """``/activitymimeattachments(<guid>)``: retrieve (``body`` when selected), delete."""

    @extend_schema(
        operation_id="dynamics_attachment_retrieve",
        summary="Retrieve an attachment ($select=body for its bytes, base64)",
        responses=documented(502),
    )
    def get(self, request: Request, guid: str) -> Response:
        check_options(request)
        select = parse_select(request, entity=ATTACHMENT_ENTITY, known=ATTACHMENT_PROPERTIES)
        attachment = visible_attachment(request, guid)
        content = None
        if select is not None and "body" in select:
            with blob_open_verified(blob=attachment.blob, label=attachment.filename) as stream:
                content = encode_body(stream.read())
        body = {
            "@odata.context": context_url(request, "activitymimeattachments/$entity"),
            **attachment_entity(attachment, select=select, body=content),
        }
        return Response(body)

    @extend_schema(
        operation_id="dynamics_attachment_delete",
        summary="Remove an attachment from a draft email or a template",
        responses=documented(403, 409, ok=204),
    )
    def delete(self, request: Request, guid: str) -> Response:
        attachment_delete(
            attachment=visible_attachment(request, guid), actor=signed_in_user(request)
        )
        return Response(status=204)
