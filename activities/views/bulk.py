"""The staff pages of bulk sends: the jobs, the wizard that starts one, and a job's live
progress with cancel.

The wizard is one form in three steps (template and sender, audience, confirm). Its
audience panel is refreshed with htmx as the filters change, and works without
JavaScript through "Update preview". Starting goes through ``bulk_send_start_once``:
the form carries a fresh start token, so a double click or a reload answers the job
the first post started instead of starting a second one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse_lazy
from django.views.decorators.http import require_GET, require_POST

from common.errors import ApplicationError
from crm.models import Account, Contact, Queue, Tag, User
from crm.views import AuthenticatedHttpRequest

from ..errors import SenderNotAllowed, SenderNotApproved, TemplateRenderError
from ..html import FRAME_SANDBOX, body_frame_response
from ..models import BulkSend, BulkSendStatus, RecordType, SkipReason, Template
from ..selectors import (
    BulkAudience,
    bulk_audience,
    bulk_send_progress,
    bulk_sends_visible_to,
    bulk_sends_with_progress,
    sender_choices,
    sender_from_key,
    templates_visible_to,
)
from ..services.bulk import bulk_query_clean, bulk_send_cancel, bulk_send_start_once
from ..services.templates import template_render

SAMPLE_URL = reverse_lazy("bulk-sample")
PAGE_SIZE = 25
SAMPLE_SIZE = 3
FINISHED = (BulkSendStatus.COMPLETED, BulkSendStatus.CANCELED, BulkSendStatus.FAILED)


# --- the wizard's form ----------------------------------------------------------------


class BulkForm(forms.Form):
    template = forms.ModelChoiceField(
        queryset=Template.objects.none(),
        empty_label="Choose a template",
        error_messages={"required": "Choose a template."},
    )
    sender = forms.ChoiceField(error_messages={"required": "Choose who the mail is from."})
    account = forms.ModelChoiceField(
        queryset=Account.objects.order_by("name", "pk"), required=False, empty_label="Any account"
    )
    city = forms.CharField(max_length=100, required=False)
    tag = forms.ModelChoiceField(
        queryset=Tag.objects.order_by("name"),
        to_field_name="name",
        required=False,
        empty_label="Any tag",
    )
    created_after = forms.DateField(required=False)
    created_before = forms.DateField(required=False)

    def __init__(self, *args: Any, user: User, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.senders = sender_choices(user)
        template, sender = self.fields["template"], self.fields["sender"]
        assert isinstance(template, forms.ModelChoiceField)
        assert isinstance(sender, forms.ChoiceField)
        template.queryset = templates_visible_to(user).filter(
            record_type__in=[RecordType.CONTACT, RecordType.GLOBAL]
        )
        sender.choices = [(o.key, o.record.display_name) for o in self.senders]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean answers cleaned_data
        after, before = data.get("created_after"), data.get("created_before")
        if after and before and after >= before:
            self.add_error("created_before", "Must be later than “created on or after”.")
        return data

    @property
    def chosen_sender(self) -> User | Queue | None:
        key = self.cleaned_data.get("sender") if hasattr(self, "cleaned_data") else None
        return next((o.record for o in self.senders if o.key == key), None)

    def query(self) -> dict[str, Any]:
        """The bulk service's query from the valid filters (empty ones left out)."""
        data = self.cleaned_data
        query: dict[str, Any] = {}
        if data.get("account"):
            query["account"] = data["account"].pk
        if data.get("city"):
            query["city"] = data["city"].strip()
        if data.get("tag"):
            query["tag"] = data["tag"].name
        for key in ("created_after", "created_before"):
            if data.get(key):
                query[key] = data[key].isoformat()
        return query


FILTER_FIELDS = ("account", "city", "tag", "created_after", "created_before")


@dataclass
class Sample:
    contact: Contact
    subject: str = ""
    frame_url: str = ""


@dataclass
class Preview:
    """What the audience panel shows: counts, a sample, and what stops a start."""

    audience: BulkAudience | None = None
    samples: list[Sample] | None = None
    template_error: str = ""
    query_error: str = ""

    @property
    def skipped(self) -> list[tuple[str, int]]:
        if self.audience is None:
            return []
        return [(SkipReason(r).label, n) for r, n in self.audience.skipped.items()]

    @property
    def skipped_total(self) -> int:
        return sum(self.audience.skipped.values()) if self.audience else 0


def _preview(form: BulkForm) -> Preview:
    """The audience of the form's filters (when they are valid) and, when the template
    and sender are chosen, the template rendered for the first contacts."""
    preview = Preview()
    if any(name in form.errors for name in FILTER_FIELDS):
        return preview
    try:
        query = bulk_query_clean(form.query())
    except ApplicationError as err:
        preview.query_error = err.message
        return preview
    preview.audience = bulk_audience(query, sample_size=SAMPLE_SIZE)
    template, sender = form.cleaned_data.get("template"), form.chosen_sender
    if template is None or sender is None:
        return preview
    preview.samples = []
    for contact in preview.audience.sample:
        try:
            rendered = template_render(template=template, regarding=contact, sender=sender)
        except TemplateRenderError as err:
            preview.template_error = err.message
            preview.samples = []
            break
        frame = urlencode(
            {"template": template.pk, "sender": form.cleaned_data["sender"], "contact": contact.pk}
        )
        preview.samples.append(Sample(contact, rendered.subject, f"{SAMPLE_URL}?{frame}"))
    return preview


def _wizard_context(
    request: AuthenticatedHttpRequest, form: BulkForm, **extra: Any
) -> dict[str, Any]:
    # A fresh form filters nothing yet: its audience is every contact.
    preview = _preview(form) if form.is_bound else Preview(audience=bulk_audience({}))
    return {
        "nav": "bulk",
        "form": form,
        "senders": form.senders,
        "preview": preview,
        "frame_sandbox": FRAME_SANDBOX,
        "start_token": uuid.uuid4().hex,
        "ready": form.is_bound
        and form.is_valid()
        and preview.audience is not None
        and preview.audience.eligible > 0,
        **extra,
    }


# Which field a refusal of the start belongs next to; the rest go to the top.
ERROR_FIELD = {
    SenderNotApproved: "sender",
    SenderNotAllowed: "sender",
    TemplateRenderError: "template",
}


@login_required
def bulk_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method != "POST":
        own = f"user:{request.user.pk}"
        if request.GET:  # a link or a reload with the choices in the address
            data = request.GET.copy()
            data.setdefault("sender", own)
            form = BulkForm(data, user=request.user)
        else:
            form = BulkForm(initial={"sender": own}, user=request.user)
        return render(request, "web/bulk_new.html", _wizard_context(request, form))
    form = BulkForm(request.POST, user=request.user)
    if not form.is_valid():
        return render(request, "web/bulk_new.html", _wizard_context(request, form), status=400)
    if request.POST.get("action") != "start":
        return render(request, "web/bulk_new.html", _wizard_context(request, form))
    sender = form.chosen_sender
    assert sender is not None  # the form took one of the sender choices
    try:
        job, started = bulk_send_start_once(
            key=request.POST.get("start_token", ""),
            template=form.cleaned_data["template"],
            sender=sender,
            query=form.query(),
            actor=request.user,
        )
    except ApplicationError as err:
        field = ERROR_FIELD.get(type(err))
        if field:
            form.add_error(field, err.message)
        context = _wizard_context(request, form, start_error="" if field else err.message)
        return render(request, "web/bulk_new.html", context, status=err.http_status)
    if started:
        messages.success(request, f"Bulk send #{job.pk} started.")
    return redirect("bulk-detail", pk=job.pk)


@login_required
@require_GET
def bulk_audience_panel(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The wizard's audience panel for the choices in the query string (htmx)."""
    form = BulkForm(request.GET, user=request.user)
    form.is_valid()
    return render(request, "web/bulk/audience.html", _wizard_context(request, form, oob=True))


@login_required
@require_GET
def bulk_sample_frame(request: AuthenticatedHttpRequest) -> HttpResponse:
    """One sample of the wizard: the template rendered for a contact, as the framed,
    sanitised page the email page uses (``<iframe sandbox>``, its own CSP)."""
    try:
        template = templates_visible_to(request.user).get(pk=int(request.GET.get("template", "")))
        contact = Contact.objects.select_related("account").get(
            pk=int(request.GET.get("contact", ""))
        )
    except (ValueError, Template.DoesNotExist, Contact.DoesNotExist):
        raise Http404("no such template or contact") from None
    sender = sender_from_key(request.user, request.GET.get("sender", ""))
    if sender is None:
        raise Http404("no such sender")
    try:
        rendered = template_render(template=template, regarding=contact, sender=sender)
    except TemplateRenderError as err:
        response = body_frame_response(text=err.message)
        response.status_code = err.http_status
        return response
    return body_frame_response(html=rendered.body_html, text=rendered.body_text)


# --- the jobs -------------------------------------------------------------------------


def _jobs_for(user: User):
    return bulk_sends_with_progress(bulk_sends_visible_to(user))


@login_required
@require_GET
def bulk_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    jobs = _jobs_for(request.user).order_by("-created_at", "-id")
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/bulk_list.html", {"nav": "bulk", "page": page})


@dataclass
class Progress:
    job: BulkSend
    counts: dict[str, Any]

    @property
    def waiting(self) -> int:
        """Written and not yet sent, failed or withdrawn: pending or being sent."""
        c = self.counts
        return max(c["created"] - c["sent"] - c["failed"] - c["canceled"], 0)

    @property
    def done(self) -> int:
        c = self.counts
        return c["sent"] + c["failed"] + c["canceled"] + c["skipped"]

    @property
    def signature(self) -> str:
        """Changes whenever anything the progress shows does (the poll's "same as")."""
        c = self.counts
        parts = [self.job.status, c["created"], c["sent"], c["failed"], c["canceled"]]
        return "-".join(str(p) for p in [*parts, c["skipped"]])

    @property
    def finished(self) -> bool:
        return self.job.status in FINISHED and self.waiting == 0

    @property
    def cancelable(self) -> bool:
        return self.job.status in (BulkSendStatus.QUEUED, BulkSendStatus.RUNNING) or (
            self.job.status == BulkSendStatus.COMPLETED and self.waiting > 0
        )

    @property
    def rate(self) -> int:
        sender = self.job.sender
        return sender.send_rate_per_minute if sender is not None else 0

    @property
    def minutes_left(self) -> int:
        return -(-self.waiting // self.rate) if self.rate else 0

    @property
    def skipped(self) -> list[tuple[str, int]]:
        by_reason = self.counts["skipped_by_reason"] or {}
        return [(SkipReason(r).label, n) for r, n in by_reason.items() if r in SkipReason.values]


def _progress_of(user: User, pk: int) -> Progress:
    job = get_object_or_404(_jobs_for(user), pk=pk)
    return Progress(job, bulk_send_progress(job))


@login_required
@require_GET
def bulk_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    progress = _progress_of(request.user, pk)
    if request.htmx:
        # The poll names what it shows; nothing new is "no content", which htmx leaves
        # in place, so a screen reader hears the region only when it changes.
        if request.GET.get("v") == progress.signature:
            return HttpResponse(status=204)
        context = {"job": progress.job, "progress": progress, "oob": progress.finished}
        return render(request, "web/bulk/progress.html", context)
    return render(request, "web/bulk_detail.html", _detail_context(progress))


def _detail_context(progress: Progress, **extra: Any) -> dict[str, Any]:
    return {
        "nav": "bulk",
        "job": progress.job,
        "progress": progress,
        "audience": describe_query(progress.job.query),
        **extra,
    }


def describe_query(query: dict[str, Any]) -> list[str]:
    """A job's query in words: ["Account: Acme", "City: Oslo", ...]."""
    words = []
    if query.get("account") is not None:
        account = Account.objects.filter(pk=query["account"]).first()
        words.append(f"Account: {account.name if account else query['account']}")
    if query.get("city"):
        words.append(f"City: {query['city']}")
    if query.get("tag"):
        words.append(f"Tag: {query['tag']}")
    if query.get("created_after"):
        words.append(f"Created on or after {query['created_after'][:10]}")
    if query.get("created_before"):
        words.append(f"Created before {query['created_before'][:10]}")
    return words


@login_required
@require_POST
def bulk_cancel(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(bulk_sends_visible_to(request.user), pk=pk)
    try:
        job = bulk_send_cancel(job=job, actor=request.user)
    except ApplicationError as err:
        context = _detail_context(_progress_of(request.user, pk), error=err.message)
        return render(request, "web/bulk_detail.html", context, status=err.http_status)
    messages.success(request, f"Bulk send #{job.pk} canceled: nothing more will be written.")
    return redirect("bulk-detail", pk=job.pk)


urlpatterns = [
    path("bulk/", bulk_list, name="bulk"),
    path("bulk/new/", bulk_create, name="bulk-create"),
    path("bulk/new/audience/", bulk_audience_panel, name="bulk-audience"),
    path("bulk/new/sample/", bulk_sample_frame, name="bulk-sample"),
    path("bulk/<int:pk>/", bulk_detail, name="bulk-detail"),
    path("bulk/<int:pk>/cancel/", bulk_cancel, name="bulk-cancel"),
]
