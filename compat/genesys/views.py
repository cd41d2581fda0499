"""The views of ``/api/v2/me/emails``: each operation one call of the services of
``/api/v1/``, on the emails the caller may see (``emails_visible_to``)."""

from __future__ import annotations

from email.utils import getaddresses
from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from activities.models import Email, PartyRole
from activities.replies import reply_fields
from activities.selectors import email_list_queryset, emails_visible_to, sender_named
from activities.services.attachments import attachment_store
from activities.services.emails import email_cancel, email_create, email_send, email_update
from activities.services.webhooks import GENESYS_CAPABILITIES, GENESYS_STATE
from common.api.idempotency import idempotent
from common.api.parsers import JSONParser
from compat.base import VendorAPIView
from crm.api import signed_in_user
from crm.models import Queue, User

from . import inputs
from .errors import InvalidParameter, MissingParameter, UnsupportedOperation, genesys_error
from .ids import genesys_email_id, genesys_email_uri, pk_of
from .schema import (
    GenesysCreatedSerializer,
    GenesysCreateSerializer,
    GenesysEmailResourceSerializer,
    GenesysOperationResultSerializer,
    GenesysOperationSerializer,
    genesys_errors,
)

TAG = "Genesys"
OK = {"statusCode": 0}
EMAIL_ID = OpenApiParameter(
    "id", str, OpenApiParameter.PATH, description="the email's id: 16 hex digits"
)
SEND_SAMPLE = {
    "operationName": "Send",
    "queueName": "Support",
    "email": {
        "body": "<p>Feels like good.</p>",
        "to": ["ann@example.com", {"email": "bob@example.com", "name": "Bob"}],
        "cc": "carl@example.com, dora@example.com",
        "from": "support@example.com",
        "subject": "Hello Email",
    },
}


def _visible_email(request: Request, id: str) -> Email:
    email = emails_visible_to(request.user).filter(pk=pk_of(id)).first()
    if email is None:
        raise NotFound(f"no email {id[:40]} that you may see")
    return email


def _operation(data: Any) -> str:
    if not isinstance(data, dict):
        raise InvalidParameter("the body must be a JSON object")
    for key, value in data.items():
        if str(key).lower() == inputs.OPERATION.lower():
            if not isinstance(value, str) or not value.strip():
                raise InvalidParameter("operationName must be a string")
            return value.strip()
    raise MissingParameter("operationName is required (Create, Send, Reply, ReplyAll, Cancel)")


def _created(email: Email) -> Response:
    # statusCode as Genesys answers; the id and uri besides, since we have no CometD
    # channel that would announce the new email (webhooks do, when subscribed).
    return Response({**OK, "id": genesys_email_id(email.pk), "uri": genesys_email_uri(email.pk)})


def _attach(email: Email, actor: User, attachments: list[inputs.Attachment]) -> None:
    for attachment in attachments:
        attachment_store(
            owner=email,
            source=attachment.content,
            filename=attachment.filename,
            mime_type=attachment.mime_type,
            actor=actor,
        )


def _check_from(given: str, queue: Queue) -> None:
    addresses = [address for _, address in getaddresses([given]) if address]
    if len(addresses) != 1 or addresses[0].lower() != queue.email.lower():
        raise InvalidParameter(
            f"email.from {given[:200]!r} is not the address of the queue {queue.name!r} "
            f"({queue.email}): an email goes out from its queue's address",
            field="from",
        )


def _parties(email: Email, role: str) -> list[str]:
    return [p.address for p in email.parties.all() if p.role == role]


def email_resource(email: Email) -> dict[str, Any]:
    """An email as Genesys' Email resource shows it."""
    sender = email.sender
    return {
        "id": genesys_email_id(email.pk),
        "state": GENESYS_STATE.get(email.status, "Completed"),
        "uri": genesys_email_uri(email.pk),
        "from": email.from_address or (sender.email if sender is not None else "") or "",
        "to": _parties(email, PartyRole.TO),
        "cc": _parties(email, PartyRole.CC),
        "bcc": _parties(email, PartyRole.BCC),
        "subject": email.subject,
        "body": email.body_html,
        "bodyAsPlainText": email.body_text,
        "mime": "text/html" if email.body_html else "text/plain",
        "attachments": [
            {
                "id": str(a.pk),
                "name": a.filename,
                "size": a.blob.size,
                "uri": f"/api/v1/attachments/{a.pk}/content/",
                "mime": a.mime_type,
            }
            for a in email.attachments.all()
        ],
        "capabilities": list(GENESYS_CAPABILITIES.get(email.status, [])),
        "userData": {},
        "crmStatus": email.status,
    }


class GenesysView(VendorAPIView):
    error_shape = staticmethod(genesys_error)
    parser_classes = [JSONParser]


class MyEmailsView(GenesysView):
    @extend_schema(
        tags=[TAG],
        operation_id="genesys_me_emails_create",
        summary="Create a new outbound email (operation Create): our draft",
        request=GenesysCreateSerializer,
        responses={200: GenesysCreatedSerializer, **genesys_errors(400, 403, 404, 415)},
        examples=[
            OpenApiExample("Create", value={"operationName": "Create", "queueName": "Support"})
        ],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        operation = _operation(request.data)
        if operation.lower() != "create":
            raise UnsupportedOperation(
                f"operationName {operation[:50]!r}: /api/v2/me/emails takes Create; "
                "Send, Reply, ReplyAll and Cancel go to /api/v2/me/emails/{id}"
            )
        data = inputs.folded(request.data, known=inputs.CREATE_PARAMETERS)
        inputs.user_data(data)
        actor = signed_in_user(request)
        queue = inputs.sender_queue(data, required=False)
        parent = None
        parent_id = inputs.text(data, "parentId", max_length=40)
        if parent_id is not None:
            parent = _visible_email(request, parent_id)
        email = email_create(actor=actor, sender=queue or actor, parent=parent)
        return _created(email)


class MyEmailView(GenesysView):
    @extend_schema(
        tags=[TAG],
        operation_id="genesys_me_email_get",
        summary="One email, as Genesys' Email resource",
        parameters=[EMAIL_ID],
        responses={200: GenesysEmailResourceSerializer, **genesys_errors(404)},
    )
    def get(self, request: Request, id: str) -> Response:
        email = _visible_email(request, id)
        email = email_list_queryset(Email.objects.filter(pk=email.pk)).get()
        return Response({**OK, "email": email_resource(email)})

    @extend_schema(
        tags=[TAG],
        operation_id="genesys_me_email_operation",
        summary="Send, Reply, ReplyAll or Cancel an email",
        parameters=[EMAIL_ID],
        description=(
            "`Send` sets `email` on the draft and sends it from the queue `queueName` "
            "(the caller must be allowed to send as it); on any refusal nothing changes. "
            "`Reply`/`ReplyAll` create a reply draft; `Cancel` withdraws a draft or "
            'pending email. Answers `{"statusCode": 0}`; refusals carry a non-zero '
            "`statusCode`, `statusMessage` and Genesys Cloud's error body."
        ),
        request=GenesysOperationSerializer,
        responses={
            200: GenesysOperationResultSerializer,
            **genesys_errors(400, 403, 404, 409, 413, 415),
        },
        examples=[OpenApiExample("Send", value=SEND_SAMPLE)],
    )
    @idempotent
    def post(self, request: Request, id: str) -> Response:
        operation = _operation(request.data).lower()
        email = _visible_email(request, id)
        actor = signed_in_user(request)
        if operation == "send":
            return self._send(request, email, actor)
        if operation in ("reply", "replyall"):
            return self._reply(request, email, actor, reply_all=operation == "replyall")
        if operation == "cancel":
            data = inputs.folded(request.data, known=inputs.CANCEL_PARAMETERS)
            inputs.user_data(data)
            email_cancel(
                email=email, actor=actor, reason=inputs.text(data, "reason", max_length=1000) or ""
            )
            return Response(OK)
        raise UnsupportedOperation(
            f"operationName {operation[:50]!r} is not offered here (Send, Reply, ReplyAll, Cancel)"
        )

    def _send(self, request: Request, email: Email, actor: User) -> Response:
        data = inputs.folded(request.data, known=inputs.SEND_PARAMETERS)
        inputs.user_data(data)
        inputs.boolean(data, "saveLAR")  # no last-agent routing here: checked, then unused
        queue = inputs.sender_queue(data, required=True)
        assert queue is not None
        given = inputs.email_input(data.get("email"))
        if given.sender_address:
            _check_from(given.sender_address, queue)
        # One request, one outcome: a refused send keeps none of the edits
        # (Genesys: "if an error occurs during a request, the request failed to modify
        # the data").
        with transaction.atomic():
            email_update(email=email, actor=actor, sender=queue, **given.changes)
            _attach(email, actor, given.attachments)
            email_send(email=email, actor=actor)
        return Response(OK)

    def _reply(
        self, request: Request, original: Email, actor: User, *, reply_all: bool
    ) -> Response:
        data = inputs.folded(request.data, known=inputs.REPLY_PARAMETERS)
        inputs.user_data(data)
        original = email_list_queryset(Email.objects.filter(pk=original.pk)).get()
        fields = reply_fields(original, actor, reply_all=reply_all)
        queue = inputs.sender_queue(data, required=False)
        sender = queue or sender_named(fields["sender"]) or actor
        prefix = inputs.text(data, "subjectPrefix", max_length=100)
        subject = f"{prefix}{original.subject}" if prefix is not None else fields["subject"]
        for name in ("replyToStartLine", "indentCharacter"):
            inputs.text(data, name, max_length=200)
        changes, attachments = inputs.reply_body(data)
        changes.pop("_from", None)  # a reply goes out from its sender, as its From says
        body_text = fields["body_text"] if inputs.boolean(data, "quoteOriginal") else ""
        to = inputs.recipients(fields["to"], where="the original's sender", role="to")
        cc = inputs.recipients(fields["cc"], where="the original's cc", role="cc")
        with transaction.atomic():
            email = email_create(
                actor=actor,
                sender=sender,
                subject=changes.get("subject", subject),
                body_html=changes.get("body_html", ""),
                body_text=changes.get("body_text", body_text),
                to=changes.get("to", to),
                cc=changes.get("cc", cc),
                regarding=original.regarding if original.regarding_type_id else None,
                parent=original,
                reply_to=changes.get("reply_to", ()),
                headers=changes.get("headers", ()),
                request_delivery_receipt=changes.get("request_delivery_receipt", False),
                request_read_receipt=changes.get("request_read_receipt", False),
            )
            _attach(email, actor, attachments)
        return _created(email)
