"""The admin of emails: compose, send, mark as sent, cancel through the services; the
read-only pages of parties and events."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.db.models import Prefetch
from django.http import HttpResponseRedirect
from django.urls import reverse

from common.admin_actions import run_action
from common.errors import ApplicationError

from ..addresses import (
    check_address,
    check_custom_header_lines,
    check_display_name,
    check_header_value,
    custom_header_lines,
)
from ..models import (
    ActivityMimeAttachment,
    Email,
    EmailEvent,
    EmailParty,
    EmailStatus,
    PartyRole,
)
from ..policies import EDITABLE_STATUSES
from ..services.emails import (
    email_cancel,
    email_create,
    email_mark_as_sent,
    email_send,
    email_update,
)
from .base import (
    AttachmentInline,
    EditableOnlyInDraftMixin,
    ReadOnlyAdmin,
    ServiceErrorsAsMessagesMixin,
    as_form_error,
    coloured_status,
    mark_saved_by_service,
    save_attachment_formset,
)

STATUS_COLOURS: dict[str, str] = {
    EmailStatus.DRAFT: "#555",
    EmailStatus.FAILED: "#b00020",
    EmailStatus.PENDING_SEND: "#8a5a00",
    EmailStatus.SENDING: "#8a5a00",
    EmailStatus.SENT: "#1b5e20",
    EmailStatus.RECEIVED: "#0d47a1",
    EmailStatus.COMPLETED: "#1b5e20",
    EmailStatus.CANCELED: "#555",
}


class PartyForm(forms.ModelForm):
    role = forms.ChoiceField(
        choices=[
            (r.value, r.label)
            for r in (PartyRole.TO, PartyRole.CC, PartyRole.BCC, PartyRole.REPLY_TO)
        ]
    )
    address = forms.CharField(
        required=False, max_length=320, help_text="Leave empty to use the contact's address."
    )

    class Meta:
        model = EmailParty
        fields = ("role", "contact", "address", "name")

    def clean(self):
        data = super().clean()
        assert data is not None  # Form.clean answers cleaned_data
        if self.cleaned_data.get("DELETE"):
            return data
        contact = data.get("contact")
        address = data.get("address") or (contact.email if contact else "")
        try:
            data["address"] = check_address(address, label="address")
            data["name"] = check_display_name(data.get("name") or "")
        except ApplicationError as exc:
            raise as_form_error(exc) from exc
        return data


class EmailPartyInline(EditableOnlyInDraftMixin, admin.TabularInline):
    model = EmailParty
    form = PartyForm
    extra = 1
    autocomplete_fields = ("contact",)
    verbose_name = "recipient or Reply-To address"
    verbose_name_plural = "recipients and Reply-To addresses"

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(role=PartyRole.FROM).select_related("contact")


class EmailAttachmentInline(EditableOnlyInDraftMixin, AttachmentInline):
    fk_name = "email"

    def _editable(self, obj) -> bool:
        return obj is None or obj.status == EmailStatus.DRAFT


class EmailEventInline(admin.TabularInline):
    model = EmailEvent
    fields = ("created_at", "kind", "from_status", "to_status", "actor_label", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "event"
    verbose_name_plural = "timeline"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


COMPOSE_FIELDS = (
    "sender_user",
    "sender_queue",
    "subject",
    "body_text",
    "body_html",
    "priority",
    "scheduled_at",
    "request_delivery_receipt",
    "request_read_receipt",
)


DELIVERY_FIELDS = (
    "status",
    "state",
    "direction",
    "from_address",
    "message_id",
    "tracking_token",
    "in_reply_to",
    "attempts",
    "last_error",
    "possible_duplicate",
    "lease_owner",
    "lease_expires_at",
)


TIME_FIELDS = ("queued_at", "sent_at", "failed_at", "canceled_at", "created_at", "modified_at")


class EmailAdminForm(forms.ModelForm):
    # Typed one "Name: value" a line, as on the compose page; stored as a list.
    headers_text = forms.CharField(
        label="Custom headers",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="One “Name: value” a line, such as “X-Campaign: spring”. The standard "
        "headers (From, Subject, Content-Type...) are the application's and cannot be set.",
    )

    class Meta:
        model = Email
        fields = (*COMPOSE_FIELDS, "regarding_type", "regarding_id")
        help_texts = {"sender_queue": "Choose a queue to send as the queue instead of a user."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["headers_text"].initial = custom_header_lines(self.instance.headers)

    def clean_headers_text(self):
        try:
            return check_custom_header_lines(self.cleaned_data.get("headers_text") or "")
        except ApplicationError as exc:
            raise as_form_error(exc) from exc

    def clean_subject(self):
        try:
            return check_header_value(self.cleaned_data["subject"], label="subject", max_length=400)
        except ApplicationError as exc:
            raise as_form_error(exc) from exc

    def clean(self):
        data = super().clean()
        assert data is not None  # Form.clean answers cleaned_data
        if data.get("sender_queue"):
            data["sender_user"] = None
        ctype, obj_id = data.get("regarding_type"), data.get("regarding_id")
        if bool(ctype) != bool(obj_id):
            raise forms.ValidationError("give both the regarding type and id, or neither")
        if ctype and not ctype.model_class().objects.filter(pk=obj_id).exists():
            raise forms.ValidationError(f"there is no {ctype.name} with id {obj_id}")
        return data


@admin.register(Email)
class EmailAdmin(ServiceErrorsAsMessagesMixin, admin.ModelAdmin):
    form = EmailAdminForm
    list_display = (
        "id",
        "subject",
        "status_badge",
        "direction",
        "sender_display",
        "recipients",
        "attempts",
        "created_at",
        "sent_at",
    )
    list_display_links = ("id", "subject")
    list_filter = ("status", "direction", "priority", "sender_queue", "possible_duplicate")
    search_fields = ("subject", "parties__address", "message_id", "tracking_token")
    list_select_related = ("sender_user", "sender_queue")
    date_hierarchy = "created_at"
    actions = ["send", "mark_as_sent", "cancel"]
    inlines = [EmailPartyInline, EmailAttachmentInline, EmailEventInline]
    readonly_fields = (*DELIVERY_FIELDS, *TIME_FIELDS)
    fieldsets = (
        (None, {"fields": (*COMPOSE_FIELDS, "headers_text")}),
        ("Regarding", {"fields": ("regarding_type", "regarding_id")}),
        ("Delivery", {"fields": DELIVERY_FIELDS}),
        ("Times", {"fields": TIME_FIELDS}),
    )
    change_form_template = "admin/activities/email/change_form.html"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch("parties", queryset=EmailParty.objects.exclude(role=PartyRole.FROM))
            )
        )

    def has_change_permission(self, request, obj=None):
        # Only drafts and failed emails are editable; the others open read-only.
        editable = obj is None or obj.status in EDITABLE_STATUSES
        return editable and super().has_change_permission(request, obj)

    def get_changeform_initial_data(self, request):
        return {"sender_user": request.user.pk, **super().get_changeform_initial_data(request)}

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "regarding_type":
            kwargs["queryset"] = ContentType.objects.filter(
                app_label="crm", model__in=["contact", "account", "user", "queue"]
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return coloured_status(obj, STATUS_COLOURS)

    @admin.display(description="sender")
    def sender_display(self, obj):
        return obj.sender_queue or obj.sender_user or obj.from_address

    @admin.display(description="to")
    def recipients(self, obj):
        addresses = [p.address for p in obj.parties.all() if p.role == PartyRole.TO]
        return ", ".join(addresses[:3]) + (" …" if len(addresses) > 3 else "")

    # Writes go through the services.

    def _fields(self, form) -> dict:
        data = form.cleaned_data
        regarding = None
        if data.get("regarding_type") and data.get("regarding_id"):
            regarding = data["regarding_type"].get_object_for_this_type(pk=data["regarding_id"])
        return {
            "subject": data.get("subject", ""),
            "body_html": data.get("body_html", ""),
            "body_text": data.get("body_text", ""),
            "priority": data.get("priority"),
            "scheduled_at": data.get("scheduled_at"),
            "regarding": regarding,
            "headers": data.get("headers_text") or [],
            "request_delivery_receipt": bool(data.get("request_delivery_receipt")),
            "request_read_receipt": bool(data.get("request_read_receipt")),
        }

    def save_model(self, request, obj, form, change):
        fields = self._fields(form)
        sender = form.cleaned_data.get("sender_queue") or form.cleaned_data.get("sender_user")
        if change:
            email_update(email=obj, actor=request.user, sender=sender or request.user, **fields)
        else:
            created = email_create(actor=request.user, sender=sender or request.user, **fields)
            obj.pk = created.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        email = form.instance
        for formset in formsets:
            mark_saved_by_service(formset)
            if formset.model is EmailParty:
                recipients: dict[str, list[Any]] = {
                    PartyRole.TO: [],
                    PartyRole.CC: [],
                    PartyRole.BCC: [],
                    PartyRole.REPLY_TO: [],
                }
                for f in formset.forms:
                    if not f.cleaned_data or formset._should_delete_form(f):
                        continue
                    d = f.cleaned_data
                    entry = {"address": d["address"], "name": d.get("name", "")}
                    if d.get("contact"):
                        entry["contact"] = d["contact"]
                    recipients[d["role"]].append(entry)
                if email.status in EDITABLE_STATUSES:
                    email_update(email=email, actor=request.user, **recipients)
            elif formset.model is ActivityMimeAttachment and email.status == EmailStatus.DRAFT:
                save_attachment_formset(request, formset, email)

    def _after_save(self, request, obj, response):
        if "_send" in request.POST or "_mark_sent" in request.POST:
            issue = "_send" in request.POST
            try:
                email = email_send(email=obj, actor=request.user, issue_send=issue)
            except ApplicationError as exc:
                self.message_user(
                    request, f"Not sent, the draft is kept: {exc.message}", messages.ERROR
                )
            else:
                self.message_user(
                    request,
                    f"“{email.subject}” is queued for delivery."
                    if issue
                    else f"“{email.subject}” is marked as sent.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(reverse("admin:activities_email_change", args=[obj.pk]))
        return response

    def response_add(self, request, obj, post_url_continue=None):
        return self._after_save(request, obj, super().response_add(request, obj, post_url_continue))

    def response_change(self, request, obj):
        return self._after_save(request, obj, super().response_change(request, obj))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["editable"] = obj is None or obj.status in EDITABLE_STATUSES
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description="Send")
    def send(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda e: email_send(email=e, actor=request.user, issue_send=True),
            done="email(s) queued for delivery",
        )

    @admin.action(description="Mark as sent")
    def mark_as_sent(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda e: email_mark_as_sent(email=e, actor=request.user),
            done="email(s) marked as sent",
        )

    @admin.action(description="Cancel")
    def cancel(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda e: email_cancel(email=e, actor=request.user),
            done="email(s) canceled",
        )


@admin.register(EmailEvent)
class EmailEventAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "email",
        "kind",
        "from_status",
        "to_status",
        "actor_label",
        "reason",
    )
    list_filter = ("kind", "to_status")
    search_fields = ("email__subject", "reason", "actor_label")
    list_select_related = ("email",)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EmailParty)
class EmailPartyAdmin(ReadOnlyAdmin):
    list_display = ("email", "role", "address", "name", "contact", "user", "queue")
    list_filter = ("role",)
    search_fields = ("address", "name")
    list_select_related = ("email", "contact", "user", "queue")

    def has_delete_permission(self, request, obj=None):
        return False
