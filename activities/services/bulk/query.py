"""A bulk job's contact query: checked once, in the form ``contacts_matching`` reads."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from crm.models import Account

from ...errors import ValidationFailed
from ...selectors import BULK_QUERY_KEYS


def _moment(value: Any, key: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time.min)
    else:
        try:  # parse_* answer None for another shape and raise for an impossible date
            parsed = (
                (parse_datetime(value) or parse_date(value)) if isinstance(value, str) else None
            )
        except ValueError:
            parsed = None
        if parsed is None:
            raise ValidationFailed(
                f"query {key}: expected an ISO date or date-time, got {value!r}"
            ) from None
        moment = parsed if isinstance(parsed, datetime) else datetime.combine(parsed, time.min)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def bulk_query_clean(query: dict[str, Any] | None) -> dict[str, Any]:
    """Validate a job's contact query; returns it in a form ``contacts_matching`` reads."""
    query = dict(query or {})
    unknown = sorted(set(query) - set(BULK_QUERY_KEYS))
    if unknown:
        raise ValidationFailed(
            f"unknown query keys: {', '.join(unknown)} (known: {', '.join(BULK_QUERY_KEYS)})"
        )
    clean: dict[str, Any] = {}
    if query.get("account") is not None:
        account = query["account"]
        if isinstance(account, bool) or not isinstance(account, int):
            raise ValidationFailed("query account: expected an account id")
        if not Account.objects.filter(pk=account).exists():
            raise ValidationFailed(f"query account: there is no account with id {account}")
        clean["account"] = account
    for key in ("city", "tag"):
        if query.get(key) not in (None, ""):
            if not isinstance(query[key], str) or len(query[key]) > 100:
                raise ValidationFailed(f"query {key}: expected a text of at most 100 characters")
            clean[key] = query[key]
    for key in ("created_after", "created_before"):
        if query.get(key) not in (None, ""):
            clean[key] = _moment(query[key], key).isoformat()
    return clean
