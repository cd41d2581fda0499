"""What a record's deletion does to the emails regarding it (DESIGN.md): they stay, their
regarding is cleared, and each gets an event that names the deleted record. The
generic "regarding" link has no ``on_delete``; this is its ``SET_NULL``, in the same
transaction as the delete, for every way a record is deleted (services, admin, shell)."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models.signals import post_delete

from .email import Email, EmailEvent, EventKind

#: The records an email can be regarding (activities.records.RECORD_MODELS).
REGARDING_MODELS = ("crm.Contact", "crm.Account", "crm.User", "crm.Queue")


def _regarding_deleted(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    kind = ContentType.objects.get_for_model(sender)
    emails = Email.objects.filter(regarding_type=kind, regarding_id=instance.pk)
    ids = list(emails.values_list("pk", flat=True))
    if not ids:
        return
    name = str(instance)
    emails.update(regarding_type=None, regarding_id=None)
    EmailEvent.objects.bulk_create(
        EmailEvent(
            email_id=email_id,
            kind=EventKind.NOTE,
            reason=f"the {kind.model} it was regarding was deleted: {name} (id {instance.pk})",
            data={"regarding_type": kind.model, "regarding_id": instance.pk, "regarding": name},
        )
        for email_id in ids
    )


for _model in REGARDING_MODELS:
    post_delete.connect(_regarding_deleted, sender=_model, dispatch_uid=f"regarding-{_model}")
