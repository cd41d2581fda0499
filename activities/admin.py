from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Prefetch
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from common.admin_actions import run_action
from common.errors import ApplicationError
from crm.models import Organization

from .addresses import check_address, check_display_name, check_header_value
from .models import (
    ActivityMimeAttachment,
    AttachmentBlob,
    BulkSend,
    BulkSendStatus,
    Email,
    EmailEvent,
    EmailParty,
    EmailStatus,
    PartyRole,
    SendRateState,
    SuppressedAddress,
    Template,
)
from .policies import EDITABLE_STATUSES
from .selectors import bulk_sends_with_progress
from .services.attachments import attachment_delete, attachment_store
from .services.bulk import bulk_send_cancel
from .services.emails import (
    email_cancel,
    email_create,
    email_mark_as_sent,
    email_send,
    email_update,
)
from .services.suppression import normalized_address, suppression_add, suppression_remove
from .services.templates import template_check, template_save

STATUS_COLOURS = {
    EmailStatus.DRAFT: "#555",
    EmailStatus.FAILED: "#b00020",
    EmailStatus.PENDING_SEND: "#8a5a00",
    EmailStatus.SENDING: "#8a5a00",
    EmailStatus.SENT: "#1b5e20",
    EmailStatus.RECEIVED: "#0d47a1",
    EmailStatus.COMPLETED: "#1b5e20",
    EmailStatus.CANCELED: "#555",
}


def coloured_status(obj, colours: dict[str, str]) -> str:
    """An object's status label in its colour (emails and bulk jobs)."""
    return format_html(
        '<strong style="color:{}">{}</strong>',
        colours.get(obj.status, "#555"),
        obj.get_status_display(),
    )


def _as_form_error(exc: ApplicationError) -> forms.ValidationError:
    return forms.ValidationError(exc.message, code=exc.code)


# --- inlines ----------------------------------------------------------------------


class PartyForm(forms.ModelForm):
    role = forms.ChoiceField(
        choices=[(r.value, r.label) for r in (PartyRole.TO, PartyRole.CC, PartyRole.BCC)]
    )
    address = forms.CharField(
        required=False, max_length=320, help_text="Leave empty to use the contact's address."
    )

    class Meta:
        model = EmailParty
        fields = ("role", "contact", "address", "name")

    def clean(self):
        data = super().clean()
        if self.cleaned_data.get("DELETE"):
            return data
        contact = data.get("contact")
        address = data.get("address") or (contact.email if contact else "")
        try:
            data["address"] = check_address(address, label="address")
            data["name"] = check_display_name(data.get("name") or "")
        except ApplicationError as exc:
            raise _as_form_error(exc) from exc
        return data


class EditableOnlyInDraftMixin:
    def _editable(self, obj) -> bool:
        return obj is None or obj.status in EDITABLE_STATUSES

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


class EmailPartyInline(EditableOnlyInDraftMixin, admin.TabularInline):
    model = EmailParty
    form = PartyForm
    extra = 1
    autocomplete_fields = ("contact",)
    verbose_name = "recipient"
    verbose_name_plural = "recipients"

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(role=PartyRole.FROM).select_related("contact")


class AttachmentForm(forms.ModelForm):
    upload = forms.FileField(required=False, label="file")

    class Meta:
        model = ActivityMimeAttachment
        fields = ("upload",)

    def clean_upload(self):
        upload = self.cleaned_data.get("upload")
        if upload is not None:
            limit = Organization.get().max_attachment_bytes
            if upload.size > limit:
                raise forms.ValidationError(
                    f"the file is {upload.size} bytes, over the limit of {limit} bytes"
                )
        elif self.instance.pk is None and self.has_changed():
            raise forms.ValidationError("choose a file")
        return upload


class AttachmentInline(admin.TabularInline):
    model = ActivityMimeAttachment
    form = AttachmentForm
    extra = 1
    fields = ("upload", "filename", "mime_type", "size", "attachment_id")
    readonly_fields = ("filename", "mime_type", "size", "attachment_id")


class EmailAttachmentInline(EditableOnlyInDraftMixin, AttachmentInline):
    fk_name = "email"

    def _editable(self, obj) -> bool:
        return obj is None or obj.status == EmailStatus.DRAFT


class TemplateAttachmentInline(AttachmentInline):
    fk_name = "template"


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


def mark_saved_by_service(formset) -> None:
    """What ``formset.save()`` would set; the admin's change message reads it."""
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


def save_attachment_formset(request, formset, owner) -> None:
    """Uploads go to the blob store through the service; removals through the service."""
    mark_saved_by_service(formset)
    for form in formset.forms:
        if not form.has_changed() and not formset._should_delete_form(form):
            continue
        if formset._should_delete_form(form):
            if form.instance.pk:
                attachment_delete(attachment=form.instance)
            continue
        upload = form.cleaned_data.get("upload")
        if upload is not None and form.instance.pk is None:
            attachment_store(
                owner=owner,
                source=upload,
                filename=upload.name,
                mime_type=getattr(upload, "content_type", None),
                actor=request.user,
            )


class ServiceErrorsAsMessagesMixin:
    """A refusal from a service that got past form validation becomes a message, not a 500.

    The admin wraps the change form in a transaction, so nothing is half-written.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


# --- email ------------------------------------------------------------------------


COMPOSE_FIELDS = (
    "sender_user",
    "sender_queue",
    "subject",
    "body_text",
    "body_html",
    "priority",
    "scheduled_at",
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
    class Meta:
        model = Email
        fields = (*COMPOSE_FIELDS, "regarding_type", "regarding_id")
        help_texts = {"sender_queue": "Choose a queue to send as the queue instead of a user."}

    def clean_subject(self):
        try:
            return check_header_value(self.cleaned_data["subject"], label="subject", max_length=400)
        except ApplicationError as exc:
            raise _as_form_error(exc) from exc

    def clean(self):
        data = super().clean()
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
        (None, {"fields": COMPOSE_FIELDS}),
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
                recipients = {PartyRole.TO: [], PartyRole.CC: [], PartyRole.BCC: []}
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


# --- templates and attachments ----------------------------------------------------


class TemplateAdminForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = (
            "title",
            "description",
            "record_type",
            "language",
            "subject",
            "body_html",
            "body_text",
        )

    def clean(self):
        data = super().clean()
        try:
            template_check(
                subject=data.get("subject", ""),
                body_html=data.get("body_html", ""),
                body_text=data.get("body_text", ""),
            )
        except ApplicationError as exc:
            raise _as_form_error(exc) from exc
        return data


@admin.register(Template)
class TemplateAdmin(ServiceErrorsAsMessagesMixin, admin.ModelAdmin):
    form = TemplateAdminForm
    list_display = (
        "title",
        "record_type",
        "language",
        "subject",
        "attachment_count",
        "modified_at",
    )
    list_filter = ("record_type", "language")
    search_fields = ("title", "subject", "description")
    inlines = [TemplateAttachmentInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_attachments=Count("attachments"))

    @admin.display(description="attachments", ordering="_attachments")
    def attachment_count(self, obj):
        return obj._attachments

    def save_model(self, request, obj, form, change):
        template_save(template=obj, actor=request.user)

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            save_attachment_formset(request, formset, form.instance)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AttachmentBlob)
class AttachmentBlobAdmin(ReadOnlyAdmin):
    list_display = ("sha256", "size", "used_by", "created_at", "touched_at")
    search_fields = ("sha256",)
    readonly_fields = ("sha256", "size", "file", "used_by", "created_at", "touched_at")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_used_by=Count("attachments"))

    @admin.display(description="attachments using it", ordering="_used_by")
    def used_by(self, obj):
        return obj._used_by

    def has_delete_permission(self, request, obj=None):
        # Blobs in use are protected; unused ones go with the garbage collector.
        return obj is not None and obj._used_by == 0 and super().has_delete_permission(request, obj)


@admin.register(ActivityMimeAttachment)
class ActivityMimeAttachmentAdmin(ReadOnlyAdmin):
    list_display = ("filename", "mime_type", "size", "email", "template", "blob")
    list_select_related = ("blob", "email", "template")
    search_fields = ("filename", "blob__sha256")
    list_filter = ("mime_type",)

    def delete_model(self, request, obj):
        attachment_delete(attachment=obj)

    def delete_queryset(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda a: attachment_delete(attachment=a),
            done="attachment(s) removed",
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


# --- bulk sends ---------------------------------------------------------------------

BULK_STATUS_COLOURS = {
    BulkSendStatus.QUEUED: "#8a5a00",
    BulkSendStatus.RUNNING: "#8a5a00",
    BulkSendStatus.COMPLETED: "#1b5e20",
    BulkSendStatus.CANCELED: "#555",
    BulkSendStatus.FAILED: "#b00020",
}
BULK_PROGRESS_FIELDS = (
    "total",
    "created",
    "sent",
    "failed",
    "canceled_emails",
    "skipped",
    "skipped_by_reason_display",
    "emails_link",
)
BULK_JOB_FIELDS = (
    "status_badge",
    "template",
    "sender_display",
    "query",
    "regarding_display",
    "error",
    "created_by",
)
BULK_TIME_FIELDS = ("created_at", "started_at", "finished_at", "canceled_at", "heartbeat_at")


@admin.register(BulkSend)
class BulkSendAdmin(ReadOnlyAdmin):
    """Bulk jobs, read-only: they are started from the API; here they are watched and
    canceled. ``sent`` and ``failed`` are counted from the job's emails, as in
    ``selectors.bulk_send_progress``, for a whole page in the list's one query."""

    list_display = (
        "id",
        "template",
        "sender_display",
        "status_badge",
        "total",
        "created",
        "sent",
        "failed",
        "skipped",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_display_links = ("id", "template")
    list_filter = ("status",)
    search_fields = ("template__title",)
    date_hierarchy = "created_at"
    actions = ["cancel"]
    readonly_fields = (*BULK_JOB_FIELDS, *BULK_PROGRESS_FIELDS, *BULK_TIME_FIELDS)
    fieldsets = (
        (None, {"fields": BULK_JOB_FIELDS}),
        ("Progress", {"fields": BULK_PROGRESS_FIELDS}),
        ("Times", {"fields": BULK_TIME_FIELDS}),
    )

    def get_queryset(self, request):
        # Subqueries rather than a join: the page's rows are counted, not every job's
        # emails for the changelist's total and date hierarchy.
        return bulk_sends_with_progress(
            super()
            .get_queryset(request)
            .select_related(
                "template", "sender_user", "sender_queue", "created_by", "regarding_type"
            )
        )

    def has_delete_permission(self, request, obj=None):
        # Deleting a job would delete its emails, sent ones included: cancel instead.
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return coloured_status(obj, BULK_STATUS_COLOURS)

    @admin.display(description="sender")
    def sender_display(self, obj):
        return obj.sender_queue or obj.sender_user

    @admin.display(description="regarding")
    def regarding_display(self, obj):
        if obj.regarding_type_id is None:
            return "each email's own contact"
        return f"{obj.regarding_type.name} #{obj.regarding_id}"

    @admin.display(description="sent", ordering="sent_count")
    def sent(self, obj):
        return obj.sent_count

    @admin.display(description="failed", ordering="failed_count")
    def failed(self, obj):
        return obj.failed_count

    @admin.display(description="canceled emails")
    def canceled_emails(self, obj):
        return obj.canceled_count

    @admin.display(description="skipped by reason")
    def skipped_by_reason_display(self, obj):
        reasons = obj.skipped_by_reason or {}
        return ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items())) or "-"

    @admin.display(description="emails")
    def emails_link(self, obj):
        url = reverse("admin:activities_email_changelist") + f"?bulk_send__id__exact={obj.pk}"
        return format_html('<a href="{}">the {} emails of this job</a>', url, obj.created)

    @admin.action(description="Cancel")
    def cancel(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda job: bulk_send_cancel(job=job, actor=request.user),
            done="bulk job(s) canceled",
        )


# --- suppression list and send rates ------------------------------------------------


class SuppressedAddressForm(forms.ModelForm):
    class Meta:
        model = SuppressedAddress
        fields = ("address", "reason", "note")

    def clean_address(self):
        address = self.cleaned_data["address"]
        try:
            address = normalized_address(check_address(address, label="the address"))
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc
        if SuppressedAddress.objects.filter(address=address).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"{address} is already on the suppression list")
        return address


@admin.register(SuppressedAddress)
class SuppressedAddressAdmin(ServiceErrorsAsMessagesMixin, admin.ModelAdmin):
    """The suppression list: addresses bulk jobs never write to. Entries are added and
    removed (through ``services.suppression``), not edited."""

    form = SuppressedAddressForm
    list_display = ("address", "reason", "note", "created_by", "created_at")
    list_filter = ("reason",)
    search_fields = ("address", "note")
    date_hierarchy = "created_at"

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        created = suppression_add(
            address=obj.address, reason=obj.reason, note=obj.note, actor=request.user
        )
        obj.pk = created.pk

    def delete_model(self, request, obj):
        suppression_remove(entry=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for entry in queryset:
            suppression_remove(entry=entry, actor=request.user)


@admin.register(SendRateState)
class SendRateStateAdmin(ReadOnlyAdmin):
    """Each sender's schedule: when it may send next, and any pause after the mail
    server asked us to wait. The rate itself is set on the user or queue."""

    list_display = ("sender_key", "next_send_at", "slow_until", "slowdowns", "last_slowdown_reason")
    search_fields = ("sender_key",)
