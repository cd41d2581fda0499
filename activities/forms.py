"""Forms of the staff pages. They read and shape input; every rule they apply is the
services' own (``resolve_party`` for recipients), so a refusal reads the same here as
in the API and the admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models

from common.errors import ApplicationError
from crm.models import Contact, Queue, User

from .addresses import check_custom_header_lines, parse_address
from .models import Priority, Template
from .records import record_get
from .selectors import sender_named, templates_visible_to
from .services.emails import resolve_party

RECIPIENT_FIELDS = ("to", "cc", "bcc")


def split_addresses(value: str) -> list[str]:
    """``'Ann Lee <ann@example.com>, "Lee, Bo" <bo@example.com>; cy@example.com'`` as
    three addresses: commas and semicolons separate, except inside quotes or <...>."""
    tokens: list[str] = []
    current: list[str] = []
    quoted = angle = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        if ch in ",;" and not quoted and not angle:
            tokens.append("".join(current))
            current = []
        else:
            current.append(ch)
    tokens.append("".join(current))
    return [token.strip() for token in tokens if token.strip()]


def _record_with_address(address: str) -> Contact | User | Queue | None:
    """The one contact (else user, else queue) with this address, to link the party."""
    kinds: tuple[type[Contact] | type[User] | type[Queue], ...] = (Contact, User, Queue)
    for model in kinds:
        found: list[Contact | User | Queue] = list(model.objects.filter(email__iexact=address)[:2])
        if len(found) == 1:
            return found[0]
        if found:
            return None
    return None


def recipient_value(token: str, *, role: str) -> str | dict[str, Any]:
    """A typed recipient as the services take it: a record's dict when the address
    belongs to exactly one contact, user or queue, else the text as typed."""
    parsed = parse_address(token, label=f"{role} address", field=role)
    record = _record_with_address(parsed.address)
    if record is None:
        return token
    kind = type(record).__name__.lower()
    return {kind: record.pk, "address": parsed.address, "name": parsed.name}


# --- the compose form ---------------------------------------------------------------


class ComposeForm(forms.Form):
    """One email as typed. ``service_fields()`` is what ``email_create`` and
    ``email_update`` take; whether the user may send as the sender is theirs to say."""

    sender = forms.CharField(label="From")
    to = forms.CharField(label="To", required=False)
    cc = forms.CharField(label="Cc", required=False)
    bcc = forms.CharField(label="Bcc", required=False)
    regarding_type = forms.CharField(required=False)
    regarding_id = forms.CharField(required=False)
    template = forms.CharField(required=False)
    subject = forms.CharField(label="Subject", required=False)
    body_text = forms.CharField(label="Message", required=False, strip=False)
    body_html = forms.CharField(label="HTML version", required=False, strip=False)
    priority = forms.ChoiceField(label="Priority", choices=Priority.choices, required=False)
    reply_to = forms.CharField(label="Reply-To", required=False)
    headers = forms.CharField(label="Custom headers", required=False, strip=False)
    request_delivery_receipt = forms.BooleanField(
        label="Request a delivery receipt", required=False
    )
    request_read_receipt = forms.BooleanField(label="Request a read receipt", required=False)

    def __init__(self, *args: Any, user: User, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_sender(self) -> User | Queue:
        # Any sender the key names: whether the user may send as it is for
        # email_create / email_update to say, in their words (a 403).
        sender = sender_named(self.cleaned_data["sender"])
        if sender is None:
            raise forms.ValidationError("Choose who the email is from.")
        return sender

    def _clean_recipients(self, role: str) -> list[str | dict[str, Any]]:
        values = []
        for token in split_addresses(self.cleaned_data.get(role) or ""):
            try:
                value = recipient_value(token, role=role)
                resolve_party(value, role=role)
            except ApplicationError as err:
                raise forms.ValidationError(err.message) from err
            values.append(value)
        return values

    def clean_to(self) -> list:
        return self._clean_recipients("to")

    def clean_cc(self) -> list:
        return self._clean_recipients("cc")

    def clean_bcc(self) -> list:
        return self._clean_recipients("bcc")

    def clean_reply_to(self) -> list:
        return self._clean_recipients("reply_to")

    def clean_headers(self) -> list[dict[str, str]]:
        """One ``Name: value`` a line, checked as the API checks them."""
        try:
            return check_custom_header_lines(self.cleaned_data.get("headers") or "")
        except ApplicationError as err:
            raise forms.ValidationError(err.message) from err

    def clean_template(self) -> Template | None:
        value = self.cleaned_data.get("template") or ""
        if not value:
            return None
        template = (
            templates_visible_to(self.user).filter(pk=int(value)).first()
            if value.isdigit()
            else None
        )
        if template is None:
            raise forms.ValidationError("That template no longer exists.")
        return template

    def clean_priority(self) -> str:
        return self.cleaned_data.get("priority") or Priority.NORMAL

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean answers cleaned_data
        kind, pk = data.get("regarding_type") or "", data.get("regarding_id") or ""
        data["regarding"] = None
        if kind or pk:
            data["regarding"] = record_get(kind, pk)
            if data["regarding"] is None:
                self.add_error("regarding_id", "The record this email is about no longer exists.")
        return data

    def service_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "sender": data["sender"],
            "to": data["to"],
            "cc": data["cc"],
            "bcc": data["bcc"],
            "subject": data["subject"],
            "body_text": data["body_text"],
            "body_html": data["body_html"],
            "priority": data["priority"],
            "regarding": data["regarding"],
            "template": data["template"],
            "reply_to": data["reply_to"],
            "headers": data["headers"],
            "request_delivery_receipt": data["request_delivery_receipt"],
            "request_read_receipt": data["request_read_receipt"],
        }


def regarding_label(record: models.Model | None) -> str:
    if record is None:
        return ""
    if isinstance(record, Contact):
        detail = f" <{record.email}>" if record.email else ""
        return f"Contact: {record.full_name}{detail}"
    return f"{type(record).__name__}: {record}"
