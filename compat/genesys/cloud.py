"""Genesys Cloud's "Send an email reply": ``POST /api/v2/conversations/emails/
{conversationId}/messages`` with an EmailMessage (``to``, ``cc``, ``bcc``, ``from``,
``replyTo`` as ``{"email", "name"}``, ``subject``, ``textBody``, ``htmlBody``): one
reply to the email the conversation id names, created and sent by the services of
``/api/v1/`` (``email_create`` with that email as parent, ``email_send``)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from activities.addresses import Address
from activities.models import Email, PartyRole
from activities.replies import reply_fields
from activities.selectors import email_list_queryset, emails_visible_to
from activities.services.emails import email_create, email_send
from common.api.idempotency import idempotent
from crm.api import signed_in_user
from crm.models import Queue, User

from . import inputs
from .errors import InvalidParameter, MissingParameter
from .ids import conversation_id, pk_of_conversation
from .schema import GenesysEmailMessageSerializer, genesys_errors
from .views import TAG, GenesysView

MESSAGE_PARAMETERS = (
    "to",
    "cc",
    "bcc",
    "from",
    "replyTo",
    "subject",
    "textBody",
    "htmlBody",
    "attachments",
    # Read-only or informative in an EmailMessage: accepted and unused.
    "id",
    "name",
    "time",
    "historyIncluded",
    "emailSizeBytes",
    "selfUri",
)
SAMPLE = {
    "to": [{"email": "ann@example.com", "name": "Ann Lee"}],
    "from": {"email": "support@example.com", "name": "Support"},
    "subject": "Re: A question",
    "textBody": "Your order shipped.",
}
CONVERSATION_ID = OpenApiParameter(
    "conversationId",
    str,
    OpenApiParameter.PATH,
    description="the email replied to: a UUID holding its id (17 is ...-000000000011)",
)


def _one_address(value: Any, *, where: str) -> Address | None:
    if value is None:
        return None
    found = inputs.recipients([value], where=where, role=where)
    if len(found) != 1:
        raise InvalidParameter(f"{where} must be one address", field=where)
    return found[0]


def _sender(actor: User, address: str) -> User | Queue:
    """The sender ``from`` names: a queue of that address, or the caller's own."""
    queue = Queue.objects.filter(email__iexact=address).first()
    if queue is not None:
        return queue
    if actor.email and actor.email.lower() == address.lower():
        return actor
    raise InvalidParameter(
        f"from {address!r} is neither a queue's address nor yours: an email goes out from "
        "its sender's address",
        field="from",
    )


def _address_out(party) -> dict[str, str]:
    return {"email": party.address, "name": party.name}


def email_message(email: Email, conversation: str) -> dict[str, Any]:
    """An email as Genesys Cloud's EmailMessage."""
    parties = list(email.parties.all())

    def of(role: str) -> list[dict[str, str]]:
        return [_address_out(p) for p in parties if p.role == role]

    message = {
        "id": conversation_id(email.pk),
        "to": of(PartyRole.TO),
        "cc": of(PartyRole.CC),
        "bcc": of(PartyRole.BCC),
        "from": {"email": email.from_address, "name": email.from_name},
        "subject": email.subject,
        "textBody": email.body_text,
        "htmlBody": email.body_html,
        "attachments": [],
        "time": (email.queued_at or timezone.now()).isoformat(),
        "selfUri": f"/api/v2/conversations/emails/{conversation}/messages/"
        f"{conversation_id(email.pk)}",
    }
    reply_to = of(PartyRole.REPLY_TO)
    if reply_to:
        message["replyTo"] = reply_to[0]
    return message


class ConversationMessagesView(GenesysView):
    @extend_schema(
        tags=[TAG],
        operation_id="genesys_cloud_conversation_email_reply",
        summary="Send an email reply (Genesys Cloud): a reply to the email, sent",
        parameters=[CONVERSATION_ID],
        request=GenesysEmailMessageSerializer,
        responses={
            200: GenesysEmailMessageSerializer,
            **genesys_errors(400, 403, 404, 409, 413, 415),
        },
        examples=[OpenApiExample("Reply", value=SAMPLE)],
    )
    @idempotent
    def post(self, request: Request, conversationId: str) -> Response:  # noqa: N803 (their name)
        pk = pk_of_conversation(conversationId)
        original = emails_visible_to(request.user).filter(pk=pk).first()
        if original is None:
            raise NotFound(f"no conversation {conversationId[:40]} that you may see")
        actor = signed_in_user(request)
        data = inputs.folded(request.data, known=MESSAGE_PARAMETERS)
        if data.get("attachments"):
            raise InvalidParameter(
                "attachments are not taken here: send the reply with its attachments "
                "through /api/v2/me/emails (a whole message in email.mime) or "
                "/api/v1/attachments/",
                field="attachments",
            )
        sender_address = _one_address(data.get("from"), where="from")
        if sender_address is None:
            raise MissingParameter("from is required: the address the reply goes out from")
        if data.get("to") is None:
            raise MissingParameter("to is required: the reply's recipients")
        text = inputs.text(data, "textBody")
        if text is None:
            raise MissingParameter("textBody is required: the reply's text")
        reply_to = _one_address(data.get("replyTo"), where="replyTo")
        original = email_list_queryset(Email.objects.filter(pk=original.pk)).get()
        subject = inputs.text(data, "subject")
        with transaction.atomic():
            email = email_create(
                actor=actor,
                sender=_sender(actor, sender_address.address),
                subject=subject
                if subject is not None
                else reply_fields(original, actor, reply_all=False)["subject"],
                body_text=text,
                body_html=inputs.text(data, "htmlBody") or "",
                to=inputs.recipients(data["to"], where="to", role="to"),
                cc=inputs.recipients(data.get("cc") or [], where="cc", role="cc"),
                bcc=inputs.recipients(data.get("bcc") or [], where="bcc", role="bcc"),
                reply_to=[reply_to] if reply_to is not None else [],
                regarding=original.regarding if original.regarding_type_id else None,
                parent=original,
            )
            email_send(email=email, actor=actor)
        sent = email_list_queryset(Email.objects.filter(pk=email.pk)).get()
        return Response(email_message(sent, conversationId))
