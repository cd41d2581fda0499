"""The template pages: the list, the editor with its live preview, and delete.

Anyone signed in reads templates and previews them; writing and deleting need a staff
account, a rule ``template_save`` and ``template_delete`` enforce (the pages only hide
the buttons). The preview renders the text as typed through ``template_preview`` and
saves nothing: the rendered subject and text come back as an htmx partial, the HTML as
its own page in a sandboxed frame (``body_frame_response``) that a form targets.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from common.errors import ApplicationError
from crm.models import Account, Contact, Queue, User
from crm.views import AuthenticatedHttpRequest

from ..errors import TEMPLATE_PART_FIELDS, TemplateRenderError
from ..html import FRAME_SANDBOX, body_frame_response
from ..models import ActivityMimeAttachment, RecordType, Template
from ..records import record_get
from ..selectors import sender_choices, sender_from_key, templates_visible_to
from ..services.attachments import attachment_delete, attachment_store
from ..services.templates import template_delete, template_preview, template_save
from ..uploads import limit_upload

PAGE_SIZE = 25
PICKER_SIZE = 8
FRAME_NAME = "template-preview-frame"
PICKER_KINDS: dict[str, type[Contact] | type[Account] | type[User]] = {
    "contact": Contact,
    "account": Account,
    "user": User,
}


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = [
            "title",
            "record_type",
            "language",
            "description",
            "subject",
            "body_html",
            "body_text",
        ]
        labels = {
            "title": "Name",
            "record_type": "Record type",
            "body_html": "HTML body",
            "body_text": "Text body",
        }
        help_texts = {
            "record_type": "The kind of record the merge fields come from.",
            "language": "A language tag, such as en or de-CH.",
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "body_html": forms.Textarea(attrs={"rows": 12, "spellcheck": "false"}),
            "body_text": forms.Textarea(attrs={"rows": 8}),
        }

    def __init__(self, *args, editable: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            # Every field has an error slot (the preview fills those of the template
            # parts), named after the help text when there is one.
            described = [f"id_{name}_helptext"] if field.help_text else []
            field.widget.attrs["aria-describedby"] = " ".join([*described, f"{name}-error"])
            if not editable:
                # Read-only, not disabled: the preview still receives the values.
                key = "disabled" if isinstance(field.widget, forms.Select) else "readonly"
                field.widget.attrs[key] = True


def _attachments(template: Template | None) -> list[ActivityMimeAttachment]:
    if template is None or template.pk is None:
        return []
    return list(
        ActivityMimeAttachment.objects.filter(template=template)
        .select_related("blob")
        .order_by("position", "id")
    )


def _senders(user: User) -> list[tuple[str, str]]:
    """The senders a preview may use (``sender_choices``), as (key, label)."""
    return [(choice.key, _sender_label(choice.record)) for choice in sender_choices(user)]


def _sender_label(sender: User | Queue) -> str:
    if isinstance(sender, Queue):
        return f"{sender.name} ({sender.email})"
    return f"Me ({sender.get_full_name() or sender.get_username()}, {sender.email or 'no address'})"


def _records_matching(
    search: str, record_type: str
) -> list[tuple[str, list[Contact | Account | User]]]:
    """Picker groups: contacts and accounts (users too for a user template) by name."""
    kinds = ["contact", "account"]
    if record_type == RecordType.ACCOUNT:
        kinds = ["account", "contact"]
    if record_type == RecordType.USER:
        kinds = ["user", "contact", "account"]
    groups = []
    for kind in kinds:
        records: QuerySet = PICKER_KINDS[kind].objects.all()
        for term in search.split()[:5]:
            if kind == "account":
                records = records.filter(name__icontains=term)
            elif kind == "contact":
                records = records.filter(
                    Q(first_name__icontains=term)
                    | Q(last_name__icontains=term)
                    | Q(email__icontains=term)
                )
            else:
                records = records.filter(
                    Q(first_name__icontains=term)
                    | Q(last_name__icontains=term)
                    | Q(username__icontains=term)
                )
        if kind == "user":
            records = records.order_by("last_name", "first_name", "id")
        groups.append((kind, list(records[:PICKER_SIZE])))
    return groups


def _record_label(record: Contact | Account | User) -> str:
    if isinstance(record, Account):
        return record.name
    if isinstance(record, User):
        return record.get_full_name() or record.get_username()
    return f"{record.full_name} ({record.email})" if record.email else record.full_name


def _picker_options(search: str, record_type: str, selected: str = "") -> list[dict]:
    groups = []
    for kind, records in _records_matching(search, record_type):
        if records:
            options = [(f"{kind}:{r.pk}", _record_label(r)) for r in records]
            groups.append({"label": f"{kind.title()}s", "options": options})
    if not selected and groups:
        selected = groups[0]["options"][0][0]
    return [
        {
            "label": group["label"],
            "options": [(value, label, value == selected) for value, label in group["options"]],
        }
        for group in groups
    ]


def _editor(
    request: AuthenticatedHttpRequest,
    form: TemplateForm,
    template: Template | None,
    *,
    error: str = "",
    attachment_error: str = "",
    status: int = 200,
) -> HttpResponse:
    record_type = form["record_type"].value() or RecordType.GLOBAL
    return render(
        request,
        "web/template_form.html",
        {
            "nav": "templates",
            "form": form,
            "template": template,
            "error": error,
            "attachment_error": attachment_error,
            "can_edit": request.user.is_staff,
            "attachments": _attachments(template),
            "senders": _senders(request.user),
            "record_groups": _picker_options("", record_type),
            "frame_name": FRAME_NAME,
            "frame_sandbox": FRAME_SANDBOX,
        },
        status=status,
    )


def _save(request: AuthenticatedHttpRequest, template: Template | None) -> HttpResponse:
    form = TemplateForm(request.POST, instance=template, editable=request.user.is_staff)
    if not form.is_valid():
        return _editor(
            request, form, template, error="Please correct the fields marked below.", status=400
        )
    try:
        saved = template_save(template=form.save(commit=False), actor=request.user)
    except ApplicationError as err:
        if isinstance(err, TemplateRenderError) and err.field:
            form.add_error(err.field, err.message)
            return _editor(request, form, template, status=err.http_status)
        return _editor(request, form, template, error=err.message, status=err.http_status)
    verb = "created" if template is None else "saved"
    messages.success(request, f"Template “{saved.title}” {verb}.")
    return redirect("template-edit", pk=saved.pk)


@login_required
@require_GET
def template_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    templates = templates_visible_to(request.user).select_related("created_by")
    search = request.GET.get("q", "").strip()
    for term in search.split()[:10]:
        templates = templates.filter(title__icontains=term)
    templates = templates.prefetch_related(
        Prefetch("attachments", queryset=ActivityMimeAttachment.objects.only("id", "template_id"))
    ).order_by("title", "id")
    page = Paginator(templates, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "web/templates_list.html",
        {
            "nav": "templates",
            "page": page,
            "search": search,
            "can_edit": request.user.is_staff,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def template_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _save(request, None)
    initial = {"record_type": RecordType.CONTACT, "language": "en"}
    form = TemplateForm(initial=initial, editable=request.user.is_staff)
    return _editor(request, form, None)


@login_required
@require_http_methods(["GET", "POST"])
def template_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    template = get_object_or_404(templates_visible_to(request.user), pk=pk)
    if request.method == "POST":
        return _save(request, template)
    return _editor(
        request, TemplateForm(instance=template, editable=request.user.is_staff), template
    )


@login_required
@require_http_methods(["GET", "POST"])
def template_delete_view(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    template = get_object_or_404(templates_visible_to(request.user), pk=pk)
    context = {"nav": "templates", "template": template, "error": ""}
    if request.method == "POST":
        title = template.title
        try:
            template_delete(template=template, actor=request.user)
        except ApplicationError as err:
            context["error"] = err.message
            return render(request, "web/template/delete.html", context, status=err.http_status)
        messages.success(request, f"Template “{title}” deleted.")
        return redirect("templates")
    return render(request, "web/template/delete.html", context)


@csrf_exempt  # checked below, once the upload handlers that enforce the limit are in place
@login_required
@require_POST
def template_attachment_add(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    template = get_object_or_404(templates_visible_to(request.user), pk=pk)
    try:
        limit_upload(request)
        return _template_attachment_add(request, template)
    except ApplicationError as err:
        return _attachment_refused(request, template, err.message, err.http_status)


@csrf_protect
def _template_attachment_add(request: AuthenticatedHttpRequest, template: Template) -> HttpResponse:
    upload = request.FILES.get("file")
    if upload is None:
        return _attachment_refused(request, template, "Choose a file to upload.", 400)
    try:
        attachment, reused = attachment_store(
            owner=template,
            source=upload,
            filename=upload.name or "attachment",
            mime_type=upload.content_type or None,
            actor=request.user,
        )
    except ApplicationError as err:
        return _attachment_refused(request, template, err.message, err.http_status)
    note = " (the same bytes were already stored, so they were reused)" if reused else ""
    messages.success(request, f"Attached “{attachment.filename}”{note}.")
    return redirect("template-edit", pk=template.pk)


@login_required
@require_POST
def template_attachment_remove(
    request: AuthenticatedHttpRequest, pk: int, attachment_pk: int
) -> HttpResponse:
    template = get_object_or_404(templates_visible_to(request.user), pk=pk)
    attachment = get_object_or_404(ActivityMimeAttachment, pk=attachment_pk, template=template)
    try:
        attachment_delete(attachment=attachment, actor=request.user)
    except ApplicationError as err:
        return _attachment_refused(request, template, err.message, err.http_status)
    messages.success(request, f"Removed “{attachment.filename}”.")
    return redirect("template-edit", pk=template.pk)


def _attachment_refused(
    request: AuthenticatedHttpRequest, template: Template, message: str, status: int
) -> HttpResponse:
    form = TemplateForm(instance=template, editable=request.user.is_staff)
    return _editor(request, form, template, attachment_error=message, status=status)


@login_required
@require_GET
def template_records(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The record picker's options for a name search (an htmx partial)."""
    groups = _picker_options(
        request.GET.get("record_q", "").strip(), request.GET.get("record_type", "")
    )
    return render(request, "web/template/record_options.html", {"record_groups": groups})


@login_required
@require_POST
def template_preview_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The text as typed, rendered for the chosen record and sender; saves nothing.

    ``show=frame`` answers the HTML body as the sandboxed frame's page; otherwise the
    rendered subject, text body and any template error, as a partial. A template
    error is the preview's result, not a refusal of the request: it answers 200.
    """
    data = request.POST
    kind, _, pk = data.get("preview_record", "").partition(":")
    regarding = None
    if kind:
        if kind not in PICKER_KINDS:
            raise Http404("no such record type")
        regarding = record_get(kind, pk)
        if regarding is None:
            raise Http404(f"no such {kind}")
    key = data.get("preview_sender", "")
    sender = sender_from_key(request.user, key) if key else request.user
    if sender is None:
        raise Http404("no such sender among yours")
    error: TemplateRenderError | None = None
    rendered = None
    try:
        rendered = template_preview(
            title=data.get("title", "").strip() or "(untitled)",
            record_type=data.get("record_type", RecordType.GLOBAL),
            subject=data.get("subject", ""),
            body_html=data.get("body_html", ""),
            body_text=data.get("body_text", ""),
            regarding=regarding,
            sender=sender,
        )
    except TemplateRenderError as err:
        error = err
    if data.get("show") == "frame":
        if rendered is None:
            assert error is not None  # template_preview answers or raises
            return body_frame_response(text=f"No preview: {error.message}")
        return body_frame_response(html=rendered.body_html, text=rendered.body_text)
    field_errors = dict.fromkeys(TEMPLATE_PART_FIELDS.values(), "")
    if error and error.field:
        field_errors[error.field] = error.message
    return render(
        request,
        "web/template/preview.html",
        {
            "rendered": rendered,
            "error": error,
            "field_errors": field_errors,
            "oob": True,
        },
    )


urlpatterns = [
    path("templates/", template_list, name="templates"),
    path("templates/new/", template_create, name="template-create"),
    path("templates/preview/", template_preview_view, name="template-preview"),
    path("templates/records/", template_records, name="template-records"),
    path("templates/<int:pk>/", template_edit, name="template-edit"),
    path("templates/<int:pk>/delete/", template_delete_view, name="template-delete"),
    path(
        "templates/<int:pk>/attachments/",
        template_attachment_add,
        name="template-attachment-add",
    ),
    path(
        "templates/<int:pk>/attachments/<int:attachment_pk>/remove/",
        template_attachment_remove,
        name="template-attachment-remove",
    ),
]
