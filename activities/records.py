"""The CRM records an email or a template can be "regarding", by their public type name."""

from __future__ import annotations

from django.db import models

from crm.models import Account, Contact, Queue, User

RECORD_MODELS: dict[str, type[Contact] | type[Account] | type[User] | type[Queue]] = {
    "contact": Contact,
    "account": Account,
    "user": User,
    "queue": Queue,
}


def record_type_of(obj: models.Model) -> str:
    for name, model in RECORD_MODELS.items():
        if isinstance(obj, model):
            return name
    raise TypeError(f"no record type for {type(obj).__name__}")


def record_get(type_name: str, pk: object) -> models.Model | None:
    """The record of a type name and id, or None when either is unknown."""
    model = RECORD_MODELS.get(type_name)
    if model is None:
        return None
    try:
        return model.objects.filter(pk=int(str(pk))).first()
    except (TypeError, ValueError, OverflowError):
        return None
