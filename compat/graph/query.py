"""Graph's OData query options on message lists: ``$top``, ``$skip``, ``$select``,
``$orderby``, ``$count`` and a small ``$filter`` (docs/compat/graph.md lists it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.dateparse import parse_datetime

from activities.models import ActivityMimeAttachment, Email, EmailStatus

from .errors import GraphError
from .reading import IMPORTANCE, boolean, string
from .writing import MESSAGE_PROPERTIES

DEFAULT_TOP = 10
MAX_TOP = 1000
MAX_SKIP = 10**9
OPTIONS = {"top", "skip", "select", "orderby", "filter", "count"}

# Sortable and filterable properties, as fields of ours.
FIELDS = {
    "createdDateTime": "created_at",
    "lastModifiedDateTime": "modified_at",
    "sentDateTime": "sent_at",
    "receivedDateTime": "created_at",
    "subject": "subject",
    "importance": "priority",
}
LOOKUPS = {"eq": "exact", "gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
_CLAUSE = re.compile(
    r"\s*(?P<prop>[A-Za-z]+)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+"
    r"(?P<value>'(?:[^']|'')*'|[^\s()']+)\s*(?P<rest>(?:and\s+.*)?)$",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class ListOptions:
    top: int = DEFAULT_TOP
    skip: int = 0
    select: frozenset[str] | None = None
    orderby: tuple[str, ...] = ("-created_at", "-pk")
    filter: Q | None = None
    count: bool = False
    raw: dict[str, str] | None = None


def _integer(name: str, text: str, *, maximum: int) -> int:
    if not text.isdigit() or int(text) > maximum:
        raise GraphError(f"Invalid value '{text}' for the query option ${name}: a number from 0.")
    return int(text)


def _select(text: str) -> frozenset[str]:
    spelled = {name.lower(): name for name in MESSAGE_PROPERTIES}
    chosen = set()
    for item in text.split(","):
        name = spelled.get(item.strip().lower())
        if name is None:
            raise GraphError(
                f"Could not find a property named '{item.strip()}' on type "
                "'microsoft.graph.message'."
            )
        chosen.add(name)
    return frozenset(chosen)


def _orderby(text: str) -> tuple[str, ...]:
    spelled = {name.lower(): name for name in FIELDS}
    keys: list[str] = []
    for item in text.split(","):
        prop, _, direction = item.strip().partition(" ")
        name = spelled.get(prop.lower())
        if name is None or direction.strip().lower() not in ("", "asc", "desc"):
            raise GraphError(f"$orderby: cannot sort by '{item.strip()}'.")
        keys.append(("-" if direction.strip().lower() == "desc" else "") + FIELDS[name])
    last = "-pk" if keys and keys[-1].startswith("-") else "pk"
    return (*keys, last)


def _value(prop: str, text: str) -> Any:
    if prop in ("isDraft", "hasAttachments"):
        return boolean(text, f"$filter: {prop}")
    if text.startswith("'"):
        value = string(text[1:-1].replace("''", "'"), f"$filter: {prop}")
        if prop == "importance":
            if value.lower() not in IMPORTANCE:
                raise GraphError(f"$filter: importance is low, normal or high, not {value!r}.")
            return IMPORTANCE[value.lower()]
        if prop != "subject":
            raise GraphError(f"$filter: {prop} takes a date and time, not a string.")
        return value
    try:
        moment = parse_datetime(text) if prop.endswith("DateTime") else None
        if moment is not None and moment.utcoffset() is not None:
            # In UTC: PostgreSQL takes offsets up to ±15:59 only, Python up to ±23:59.
            return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise GraphError(f"$filter: {text!r} is not a value for {prop}.")


def _clause(prop: str, op: str, value: Any) -> Q:
    op = op.lower()
    if prop == "isDraft":
        q = Q(status__in=[EmailStatus.DRAFT, EmailStatus.FAILED])
        wanted = value
    elif prop == "hasAttachments":
        q = Q(Exists(ActivityMimeAttachment.objects.filter(email=OuterRef("pk"))))
        wanted = value
    else:
        if op == "ne":
            return ~Q(**{FIELDS[prop]: value})
        return Q(**{f"{FIELDS[prop]}__{LOOKUPS[op]}": value})
    if op not in ("eq", "ne"):
        raise GraphError(f"$filter: {prop} takes eq or ne.")
    return q if (op == "eq") == wanted else ~q


def _filter(text: str) -> Q:
    spelled = {name.lower(): name for name in [*FIELDS, "isDraft", "hasAttachments"]}
    result = Q()
    rest = text
    while rest.strip():
        match = _CLAUSE.match(rest)
        prop = spelled.get(match.group("prop").lower()) if match else None
        if match is None or prop is None:
            raise GraphError(
                f"Invalid filter clause: '{rest.strip()}'. Supported: isDraft, hasAttachments, "
                "subject, importance and the DateTime properties, with eq, ne, gt, ge, lt, le, "
                "joined by and."
            )
        result &= _clause(prop, match.group("op"), _value(prop, match.group("value")))
        rest = re.sub(r"^and\s+", "", match.group("rest"), flags=re.IGNORECASE)
    return result


def list_options(params: Any) -> ListOptions:
    """The options of a list request; an unknown or malformed one is a 400."""
    given: dict[str, str] = {}
    for key in params:
        name = key[1:] if key.startswith("$") else key
        if name.lower() not in OPTIONS:
            if key.startswith("$"):
                raise GraphError(f"Query option '{key}' is not supported on this list.")
            continue
        given[name.lower()] = params.get(key)
    options: dict[str, Any] = {"raw": given}
    if "top" in given:
        options["top"] = max(1, _integer("top", given["top"], maximum=MAX_TOP))
    if "skip" in given:
        options["skip"] = _integer("skip", given["skip"], maximum=MAX_SKIP)
    if "select" in given:
        options["select"] = _select(given["select"])
    if "orderby" in given:
        options["orderby"] = _orderby(given["orderby"])
    if "filter" in given:
        options["filter"] = _filter(given["filter"])
    if "count" in given:
        options["count"] = boolean(given["count"], "$count")
    return ListOptions(**options)


def apply(emails: QuerySet[Email], options: ListOptions) -> QuerySet[Email]:
    if options.filter is not None:
        emails = emails.filter(options.filter)
    return emails.order_by(*options.orderby)


def single_select(params: Any) -> frozenset[str] | None:
    """``$select`` of a request for one message (the only option it takes)."""
    for key in params:
        if key.lstrip("$").lower() == "select":
            return _select(params.get(key))
    return None
