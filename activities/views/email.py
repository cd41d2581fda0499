"""The email page: what an email is, who it is between, what happened to it, its body
(sanitised, framed, nothing remote until asked) and its attachments; and "Cancel
sending". Reads go through ``emails_visible_to``: an email the user may not see is a 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from common.errors import ApplicationError
from crm.views import AuthenticatedHttpRequest

from ..downloads import attachment_response, corrupted_response
from ..errors import AttachmentCorrupted, SenderNotAllowed
from ..html import FRAME_SANDBOX, body_frame_response, sanitize_email_html
from ..models import Direction, Email, EmailParty, EmailStatus, EventKind, PartyRole
from ..policies import CANCELABLE_STATUSES, check_may_send_as
from ..records import RECORD_MODELS, record_type_of
from ..selectors import conversation_of, email_page_queryset, emails_visible_to, inline_images_of
from ..services.emails import email_cancel

# Each email's timestamps, in the order they happen, as the page names them.
TIMES = (
    ("created_at", "Created"),
    ("scheduled_at", "Scheduled for"),
    ("queued_at", "Queued"),
    ("sent_at", "Sent"),
    ("received_at", "Received"),
    ("failed_at", "Failed"),
    ("completed_at", "Completed"),
    ("canceled_at", "Canceled"),
)

# The mail-list tab that lists an email of each status (canceled and completed mail
# has no tab of its own; its record's other mail is in "sent").
TAB_OF_STATUS: dict[str, str] = {
    EmailStatus.DRAFT: "drafts",
    EmailStatus.PENDING_SEND: "outbox",
    EmailStatus.SENDING: "outbox",
    EmailStatus.FAILED: "outbox",
    EmailStatus.SENT: "sent",
    EmailStatus.RECEIVED: "received",
}


def _may_act(email: Email, user) -> bool:
    sender = email.sender
    if sender is None:
        return False
    try:
        check_may_send_as(user, sender)
    except SenderNotAllowed:
        return False
    return True


def _regarding(email: Email) -> dict[str, Any] | None:
    if email.regarding_id is None or email.regarding_type is None:
        return None
    record = email.regarding
    model = email.regarding_type.model_class()
    type_name = next((name for name, m in RECORD_MODELS.items() if m is model), None)
    if record is not None:
        type_name = record_type_of(record)
    type_name = type_name or email.regarding_type.model
    tab = "received" if email.direction == Direction.INCOMING else None
    tab = tab or TAB_OF_STATUS.get(email.status, "sent")
    query = urlencode({"regarding_type": type_name, "regarding_id": str(email.regarding_id)})
    return {
        "type": type_name,
        "name": str(record) if record is not None else f"{type_name} #{email.regarding_id}",
        "missing": record is None,
        "list_url": f"{reverse('mail-tab', args=[tab])}?{query}",
    }


def _timeline(email: Email) -> list[dict[str, Any]]:
    rows = []
    for event in email.events.all():
        rows.append(
            {
                "event": event,
                "who": (event.actor.full_name if event.actor else "") or event.actor_label,
                "is_status": event.kind == EventKind.STATUS,
                "from_label": _status_label(event.from_status),
                "to_label": _status_label(event.to_status),
            }
        )
    return rows


def _status_label(status: str) -> str:
    try:
        return EmailStatus(status).label
    except ValueError:
        return status


def _page_context(request: AuthenticatedHttpRequest, email: Email) -> dict[str, Any]:
    remote_images = request.GET.get("images") == "1"
    blocked = 0
    if email.body_html.strip() and not remote_images:
        blocked = sanitize_email_html(email.body_html).blocked_images
    parties: dict[str, list[EmailParty]] = {role: [] for role in PartyRole.values}
    for party in email.parties.all():
        parties[party.role].append(party)
    body_url = reverse("email-body", args=[email.pk])
    parent_visible = (
        email.parent_id is not None
        and emails_visible_to(request.user).filter(pk=email.parent_id).exists()
    )
    return {
        "nav": "mail",
        "email": email,
        "parties": [(PartyRole(role).label, parties[role]) for role in PartyRole.values],
        "regarding": _regarding(email),
        "times": [
            (label, getattr(email, field)) for field, label in TIMES if getattr(email, field)
        ],
        "timeline": _timeline(email),
        "attachments": list(email.attachments.all()),
        "has_html": bool(email.body_html.strip()),
        "FRAME_SANDBOX": FRAME_SANDBOX,
        "frame_src": f"{body_url}?images=1" if remote_images else body_url,
        "remote_images": remote_images,
        "blocked_images": blocked,
        "images_frame_src": f"{body_url}?images=1",
        "may_cancel": email.direction == Direction.OUTGOING
        and email.status in CANCELABLE_STATUSES
        and _may_act(email, request.user),
        "parent_visible": parent_visible,
        "conversation": conversation_of(email, request.user),
    }


def _visible_email(request: AuthenticatedHttpRequest, pk: int) -> Email:
    return get_object_or_404(email_page_queryset(emails_visible_to(request.user)), pk=pk)


@login_required
def email_page(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    email = _visible_email(request, pk)
    return render(request, "web/email_detail.html", _page_context(request, email))


@login_required
def email_body(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    email = get_object_or_404(
        emails_visible_to(request.user).only("pk", "body_html", "body_text"), pk=pk
    )
    inline = {
        attachment.content_id: reverse("email-inline", args=[email.pk, attachment.pk])
        for attachment in inline_images_of(email).only("pk", "content_id")
    }
    return body_frame_response(
        html=email.body_html,
        text=email.body_text,
        remote_images=request.GET.get("images") == "1",
        inline_images=inline,
    )


@login_required
def email_inline(
    request: AuthenticatedHttpRequest, pk: int, attachment_pk: int
) -> FileResponse | HttpResponse:
    """An inline image of the email's HTML (its ``cid:`` part), to whoever may see the
    email: an image type only, never anything a browser would run."""
    email = get_object_or_404(emails_visible_to(request.user).only("pk"), pk=pk)
    attachment = get_object_or_404(inline_images_of(email).select_related("blob"), pk=attachment_pk)
    try:
        return attachment_response(attachment, inline=True)
    except AttachmentCorrupted as exc:
        return corrupted_response(exc)


@login_required
def email_attachment(
    request: AuthenticatedHttpRequest, pk: int, attachment_pk: int
) -> FileResponse | HttpResponse:
    email = get_object_or_404(emails_visible_to(request.user).only("pk"), pk=pk)
    attachment = get_object_or_404(email.attachments.select_related("blob"), pk=attachment_pk)
    try:
        return attachment_response(attachment)
    except AttachmentCorrupted as exc:
        return corrupted_response(exc)


@login_required
@require_POST
def email_cancel_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    email = get_object_or_404(emails_visible_to(request.user), pk=pk)
    try:
        email_cancel(email=email, actor=request.user, reason="canceled on the email page")
    except ApplicationError as err:
        email = _visible_email(request, pk)
        context = {**_page_context(request, email), "action_error": err.message}
        return render(request, "web/email_detail.html", context, status=err.http_status)
    messages.success(request, "Sending canceled: this email will not be sent.")
    return redirect("email", pk=pk)


urlpatterns = [
    path("mail/<int:pk>/", email_page, name="email"),
    path("mail/<int:pk>/body/", email_body, name="email-body"),
    path(
        "mail/<int:pk>/attachments/<int:attachment_pk>/",
        email_attachment,
        name="email-attachment",
    ),
    path("mail/<int:pk>/inline/<int:attachment_pk>/", email_inline, name="email-inline"),
    path("mail/<int:pk>/cancel/", email_cancel_view, name="email-cancel-sending"),
]
