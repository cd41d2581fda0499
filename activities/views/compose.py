"""Compose, reply, forward: one form for a new email, a draft (or failed email) being
edited, a reply and a forward. Saving calls ``email_create`` (``email_create_forward``)
or ``email_update``; Send and Mark as sent save first and then call ``email_send``, so a
refused send leaves the draft with everything typed and says why next to the field.

Helpers for the page, each answering an htmx request with a fragment: recipient and
regarding-record suggestions, "insert template" (rendered for the regarding record and
the sender), attachment upload (streamed within the organisation's limit) and removal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from common.errors import ApplicationError
from crm.models import Account, Contact, Organization, User
from crm.views import AuthenticatedHttpRequest

from ..addresses import Address
from ..errors import NotOutgoing, TemplateRenderError, ValidationFailed
from ..forms import (
    RECIPIENT_FIELDS,
    ComposeForm,
    regarding_label,
)
from ..html import text_of_html
from ..models import ActivityMimeAttachment, Direction, Email, EmailStatus, Priority
from ..policies import EDITABLE_STATUSES, check_may_send_as, require_status
from ..records import record_get
from ..replies import draft_fields, forward_fields, reply_fields
from ..selectors import (
    emails_visible_to,
    sender_choices,
    sender_from_key,
    sender_key,
    templates_visible_to,
)
from ..services.attachments import DEFAULT_MIME_TYPE, attachment_delete, attachment_store
from ..services.emails import (
    email_cancel,
    email_create,
    email_create_forward,
    email_send,
    email_update,
)
from ..services.templates import template_render
from ..uploads import limit_upload

MAX_SUGGESTIONS = 8
NEW, EDIT, REPLY, FORWARD = "new", "edit", "reply", "forward"
TITLES = {NEW: "New email", EDIT: "Edit email", REPLY: "Reply", FORWARD: "Forward"}


# --- rendering -----------------------------------------------------------------------


# The fields next to which the page shows a refusal ("attachments": the upload area).
SHOWN_FIELDS = frozenset({*RECIPIENT_FIELDS, "sender", "subject", "attachments"})


def _field_of(err: ApplicationError) -> str | None:
    """The form field a service refusal is about (the error names it), if shown here."""
    return err.field if err.field in SHOWN_FIELDS else None


def _attachments(email: Email | None) -> list[ActivityMimeAttachment]:
    if email is None:
        return []
    return list(email.attachments.select_related("blob").order_by("position", "id"))


def _action_url(mode: str, email: Email | None, original: Email | None, reply_all: bool) -> str:
    if email is not None:
        return reverse("compose-edit", args=[email.pk])
    if mode == REPLY and original is not None:
        url = reverse("compose-reply", args=[original.pk])
        return f"{url}?all=1" if reply_all else url
    if mode == FORWARD and original is not None:
        return reverse("compose-forward", args=[original.pk])
    return reverse("compose")


def _context(
    request: AuthenticatedHttpRequest,
    form: ComposeForm,
    *,
    mode: str,
    email: Email | None = None,
    original: Email | None = None,
    reply_all: bool = False,
    top_error: str = "",
    field_errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    user = request.user
    chosen = form["sender"].value() or sender_key(user)
    options = sender_choices(user, current=email.sender if email else None)
    chosen_option = next((o for o in options if o.key == chosen), None)
    regarding = record_get(form["regarding_type"].value() or "", form["regarding_id"].value())
    # The page reads ``kept`` on each (ticked to forward), set here.
    forward_files: list[Any] = _attachments(original) if mode == FORWARD and email is None else []
    if request.method == "POST" and forward_files:
        kept = set(request.POST.getlist("forward_attachment"))
        for attachment in forward_files:
            attachment.kept = str(attachment.pk) in kept
    field_errors = field_errors or {}
    recipient_fields = [
        {
            "field": form[name],
            "error": field_errors.get(name, " ".join(map(str, form[name].errors))),
        }
        for name in RECIPIENT_FIELDS
    ]
    return {
        "nav": "compose",
        "title": TITLES[EDIT if email is not None and mode == NEW else mode],
        "form": form,
        "mode": mode,
        "email": email,
        "original": original,
        "action_url": _action_url(mode, email, original, reply_all),
        "edit_url": reverse("compose-edit", args=[email.pk]) if email else "",
        "sender_options": options,
        "chosen_sender": chosen,
        "chosen_option": chosen_option,
        "regarding": regarding,
        "regarding_label": regarding_label(regarding),
        "recipient_fields": recipient_fields,
        "errors": {
            name: field_errors.get(name, " ".join(map(str, form[name].errors)))
            for name in (
                "sender",
                "subject",
                "body_text",
                "body_html",
                "regarding_id",
                "template",
                "reply_to",
                "headers",
            )
        }
        | {"attachments": field_errors.get("attachments", "")},
        "top_error": top_error,
        "templates": templates_visible_to(user).order_by("title", "id"),
        "attachments": _attachments(email),
        "forward_files": forward_files,
        "can_attach": email is None or email.status in EDITABLE_STATUSES,
        "max_bytes": Organization.get().max_attachment_bytes,
        "can_cancel": email is not None and email.status == EmailStatus.DRAFT,
    }


def _render(
    request: AuthenticatedHttpRequest, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    return render(request, "web/compose.html", context, status=status)


def _form_problem(form: ComposeForm) -> str:
    names = [str(form[name].label) for name in form.errors if name in form.fields]
    return "The email was not saved: check " + ", ".join(names or ["the form"]) + " below."


# --- the pages -----------------------------------------------------------------------


def _editable(request: AuthenticatedHttpRequest, pk: int) -> Email:
    return get_object_or_404(
        emails_visible_to(request.user).select_related("sender_user", "sender_queue"), pk=pk
    )


def _edit_refusal(email: Email, user: User) -> ApplicationError | None:
    """Why this email cannot be edited by ``user`` (the services' own checks), if so."""
    try:
        if email.direction != Direction.OUTGOING:
            raise NotOutgoing("only outgoing email can be edited; this one is incoming")
        require_status(email.status, EDITABLE_STATUSES, action="edit")
        if email.sender is not None:
            check_may_send_as(user, email.sender)
    except ApplicationError as err:
        return err
    return None


def _forward_ids(request: AuthenticatedHttpRequest, original: Email) -> list[int]:
    chosen = {int(v) for v in request.POST.getlist("forward_attachment") if v.isdigit()}
    return [a.pk for a in original.attachments.all() if a.pk in chosen]


def _save(
    request: AuthenticatedHttpRequest,
    form: ComposeForm,
    *,
    mode: str,
    email: Email | None,
    original,
) -> Email:
    fields = form.service_fields()
    if email is not None:
        return email_update(email=email, actor=request.user, **fields)
    if mode == FORWARD:
        return email_create_forward(
            original=original,
            actor=request.user,
            attachment_ids=_forward_ids(request, original),
            **fields,
        )
    return email_create(actor=request.user, parent=original if mode == REPLY else None, **fields)


def _saved_json(request: AuthenticatedHttpRequest, email: Email) -> JsonResponse:
    """The answer to the page's own save before an upload: where the draft now lives."""
    attachments = "".join(
        render_to_string(
            "web/compose/attachment.html",
            {"email": email, "attachment": attachment, "can_attach": True},
            request=request,
        )
        for attachment in _attachments(email)
    )
    return JsonResponse(
        {
            "email": email.pk,
            "edit_url": reverse("compose-edit", args=[email.pk]),
            "upload_url": reverse("compose-attachment-upload", args=[email.pk]),
            "attachments_html": attachments,
        }
    )


def _compose(
    request: AuthenticatedHttpRequest,
    *,
    mode: str,
    email: Email | None = None,
    original: Email | None = None,
) -> HttpResponse:
    user = request.user
    reply_all = mode == REPLY and request.GET.get("all") == "1"
    wants_json = request.headers.get("X-Compose-Save") == "1"
    if request.method != "POST":
        if email is not None:
            initial = draft_fields(email)
        elif mode == REPLY and original is not None:
            initial = reply_fields(original, user, reply_all=reply_all)
        elif mode == FORWARD and original is not None:
            initial = forward_fields(original, user)
        else:
            initial = {"sender": sender_key(user), "priority": Priority.NORMAL}
        form = ComposeForm(initial=initial, user=user)
        return _render(
            request,
            _context(request, form, mode=mode, email=email, original=original, reply_all=reply_all),
        )

    action = request.POST.get("action", "save")
    if action == "cancel":
        return _cancel(request, email)
    form = ComposeForm(request.POST, user=user)
    ctx: dict[str, Any] = {"mode": mode, "original": original, "reply_all": reply_all}
    if not form.is_valid():
        if wants_json:
            return JsonResponse({"error": _form_problem(form)}, status=400)
        context = _context(request, form, email=email, top_error=_form_problem(form), **ctx)
        return _render(request, context, status=400)
    try:
        email = _save(request, form, mode=mode, email=email, original=original)
    except ApplicationError as err:
        if wants_json:
            return JsonResponse(
                {"error": f"The email was not saved: {err.message}"}, status=err.http_status
            )
        field = _field_of(err)
        context = _context(
            request,
            form,
            email=email,
            top_error=f"The email was not saved: {err.message}",
            field_errors={field: err.message} if field else None,
            **ctx,
        )
        return _render(request, context, status=err.http_status)
    if wants_json:
        return _saved_json(request, email)
    if action not in ("send", "mark_sent"):
        messages.success(request, "Draft saved.")
        return redirect("compose-edit", pk=email.pk)
    try:
        email = email_send(email=email, actor=user, issue_send=action == "send")
    except ApplicationError as err:
        field = _field_of(err)
        verb = "sent" if action == "send" else "marked as sent"
        context = _context(
            request,
            form,
            email=Email.objects.select_related("sender_user", "sender_queue").get(pk=email.pk),
            top_error=f"Not {verb}: {err.message}. The draft is saved with everything typed.",
            field_errors={field: err.message} if field else None,
            **ctx,
        )
        return _render(request, context, status=err.http_status)
    if action == "send":
        messages.success(request, "Sent: the email is on its way.")
    else:
        messages.success(request, "Marked as sent: nothing was delivered.")
    return redirect("email", pk=email.pk)


def _cancel(request: AuthenticatedHttpRequest, email: Email | None) -> HttpResponse:
    if email is None:
        return redirect("mail")
    if email.status != EmailStatus.DRAFT:
        return redirect("email", pk=email.pk)
    try:
        email_cancel(email=email, actor=request.user, reason="draft canceled")
    except ApplicationError as err:
        form = ComposeForm(request.POST, user=request.user)
        context = _context(request, form, mode=EDIT, email=email, top_error=err.message)
        return _render(request, context, status=err.http_status)
    messages.success(request, "Draft canceled.")
    return redirect("mail-tab", tab="drafts")


@login_required
def compose(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _compose(request, mode=NEW)


@login_required
def compose_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    email = _editable(request, pk)
    refusal = _edit_refusal(email, request.user)
    if refusal is not None:
        context = {
            "nav": "compose",
            "title": TITLES[EDIT],
            "blocked": refusal.message,
            "email": email,
        }
        return _render(request, context, status=refusal.http_status)
    return _compose(request, mode=EDIT, email=email)


@login_required
def compose_reply(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _compose(request, mode=REPLY, original=_editable(request, pk))


@login_required
def compose_forward(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _compose(request, mode=FORWARD, original=_editable(request, pk))


# --- suggestions ---------------------------------------------------------------------


def _matching(qs: QuerySet, term: str, fields: Iterable[str]) -> QuerySet:
    for word in term.split()[:5]:
        condition = Q()
        for name in fields:
            condition |= Q(**{f"{name}__icontains": word})
        qs = qs.filter(condition)
    return qs


@login_required
@require_GET
def compose_recipients(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Suggestions for the last address being typed in To, Cc or Bcc: contacts, then
    users, by name or address (an ``<li role="option">`` each)."""
    field = request.GET.get("field", "to")
    field = field if field in RECIPIENT_FIELDS else "to"
    typed = request.GET.get("q", request.GET.get(field, ""))
    term = re.split(r"[,;]", typed)[-1].strip()
    options = []
    if term:
        contacts = _matching(
            Contact.objects.exclude(email=""), term, ("first_name", "last_name", "email")
        ).select_related("account")[: MAX_SUGGESTIONS - 3]
        for contact in contacts:
            detail = f"contact · {contact.account.name}" if contact.account else "contact"
            if contact.do_not_email:
                detail += " · do not email"
            options.append((contact.full_name, contact.email, detail))
        users = _matching(
            User.objects.filter(is_active=True).exclude(email=""),
            term,
            ("username", "first_name", "last_name", "email"),
        ).order_by("username")[: MAX_SUGGESTIONS - len(options)]
        options += [(u.full_name, u.email, "user") for u in users]
    rows = [
        {"name": name, "address": address, "detail": detail, "value": _address_text(name, address)}
        for name, address, detail in options
    ]
    return render(request, "web/compose/recipient_options.html", {"field": field, "options": rows})


def _address_text(name: str, address: str) -> str:
    return str(Address(address=address, name=name))


@login_required
@require_GET
def compose_regarding(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Contacts and accounts matching ``q``, to choose what an email is about."""
    term = request.GET.get("q", "").strip()
    options = []
    if term:
        contacts = _matching(Contact.objects.all(), term, ("first_name", "last_name", "email"))
        for contact in contacts[:6]:
            options.append(("contact", contact))
        accounts = _matching(Account.objects.all(), term, ("name", "email"))
        for account in accounts[: MAX_SUGGESTIONS - len(options)]:
            options.append(("account", account))
    rows = [
        {"type": kind, "id": record.pk, "label": regarding_label(record)}
        for kind, record in options
    ]
    return render(request, "web/compose/regarding_options.html", {"options": rows})


# --- insert template -----------------------------------------------------------------


@login_required
@require_POST
def compose_template(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Render the chosen template for the regarding record and the sender; answer the
    subject and message fields filled (or the template's error, with its line)."""
    user = request.user
    data = request.POST
    values: dict[str, str | int] = {
        "subject": data.get("subject", ""),
        "body_text": data.get("body_text", ""),
        "body_html": data.get("body_html", ""),
        "template": data.get("template", ""),
    }
    chosen = data.get("template_pick", "")
    template = (
        templates_visible_to(user).filter(pk=int(chosen)).first() if chosen.isdigit() else None
    )
    status, error, note = 200, "", ""
    try:
        if template is None:
            raise ValidationFailed("choose a template to insert")
        regarding = record_get(data.get("regarding_type", ""), data.get("regarding_id"))
        sender = sender_from_key(user, data.get("sender", "")) or user
        rendered = template_render(template=template, regarding=regarding, sender=sender)
    except ApplicationError as err:
        status, error = err.http_status, err.message
        if isinstance(err, TemplateRenderError) and err.line:
            error = (
                err.message
                if f"line {err.line}" in err.message
                else f"{err.message} (line {err.line})"
            )
    else:
        values = {
            "subject": rendered.subject,
            "body_text": rendered.body_text or text_of_html(rendered.body_html),
            "body_html": rendered.body_html,
            "template": template.pk,
        }
        note = f"Inserted the template “{template.title}”."
    form = ComposeForm(initial=values, user=user)
    context = {
        "form": form,
        "templates": templates_visible_to(user).order_by("title", "id"),
        "template_pick": chosen,
        "errors": {"template": error},
        "note": note,
        "swap": True,
    }
    return render(request, "web/compose/content.html", context, status=status)


# --- attachments ---------------------------------------------------------------------


def _text(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


@csrf_exempt  # checked below, once the upload handlers that enforce the limit are in place
@login_required
@require_POST
def attachment_upload(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Store one file (``file``) on a draft; answer its list item (201), or the refusal
    in words: 413 over the organisation's limit (refused unread when the declared
    length is over it), 409 when the email is no longer a draft, 403, 404."""
    try:
        limit_upload(request)
        return _attachment_upload(request, pk)
    except ApplicationError as err:
        return _text(err.message, err.http_status)


@csrf_protect
def _attachment_upload(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    email = get_object_or_404(emails_visible_to(request.user), pk=pk)
    upload = request.FILES.get("file")
    if upload is None:
        raise ValidationFailed("choose a file to upload")
    given = (upload.content_type or "").strip()
    attachment, reused = attachment_store(
        owner=email,
        source=upload,
        filename=upload.name or "",
        mime_type=given if given and given.lower() != DEFAULT_MIME_TYPE else None,
        actor=request.user,
    )
    context = {"email": email, "attachment": attachment, "reused": reused, "can_attach": True}
    return render(request, "web/compose/attachment.html", context, status=201)


@login_required
@require_POST
def attachment_remove(
    request: AuthenticatedHttpRequest, pk: int, attachment_pk: int
) -> HttpResponse:
    email = get_object_or_404(emails_visible_to(request.user), pk=pk)
    attachment = get_object_or_404(email.attachments.select_related("blob"), pk=attachment_pk)
    try:
        attachment_delete(attachment=attachment, actor=request.user)
    except ApplicationError as err:
        context = {
            "email": email,
            "attachment": attachment,
            "can_attach": True,
            "error": err.message,
        }
        return render(request, "web/compose/attachment.html", context, status=err.http_status)
    if request.htmx:
        return render(request, "web/compose/removed.html", {"attachment": attachment})
    messages.success(request, f"Removed {attachment.filename}.")
    return redirect("compose-edit", pk=email.pk)


urlpatterns = [
    path("mail/new/", compose, name="compose"),
    path("mail/<int:pk>/edit/", compose_edit, name="compose-edit"),
    path("mail/<int:pk>/reply/", compose_reply, name="compose-reply"),
    path("mail/<int:pk>/forward/", compose_forward, name="compose-forward"),
    path("mail/<int:pk>/attachments/", attachment_upload, name="compose-attachment-upload"),
    path(
        "mail/<int:pk>/attachments/<int:attachment_pk>/remove/",
        attachment_remove,
        name="compose-attachment-remove",
    ),
    path("compose/recipients/", compose_recipients, name="compose-recipients"),
    path("compose/regarding/", compose_regarding, name="compose-regarding"),
    path("compose/template/", compose_template, name="compose-template"),
]
