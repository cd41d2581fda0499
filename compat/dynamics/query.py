"""The OData query options of a collection: ``$select``, ``$filter``, ``$orderby``,
``$top``, ``$count``, ``$skiptoken`` and ``Prefer: odata.maxpagesize``.

``$filter`` is parsed by odata-query's grammar and then translated here, property by
property, from an allow-list: each property names the model field it reads and how a
Dataverse value (a status number, a GUID, a boolean) becomes ours. Anything outside
the list, a function, arithmetic or a lambda is a 400 that names the part refused.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils.dateparse import parse_date, parse_datetime
from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser
from rest_framework.request import Request

from .ids import pk_of
from .odata import ODataError, UnknownProperty, prefers

MAX_FILTER_LENGTH = 2000
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
QUERY_OPTIONS = {"$select", "$filter", "$orderby", "$top", "$count", "$skiptoken", "$expand"}

Translate = Callable[[ast._Node], Any]


@dataclass(frozen=True)
class Filterable:
    """One property ``$filter`` may name: the field it reads and how values become ours.

    ``value`` turns the literal into our value (raise ``ODataError`` to refuse it);
    ``lookup`` builds the Q of ``field == value`` when that is not a plain equality
    (a status number standing for several of ours, a null text).
    """

    field: str
    value: Callable[[ast._Node, str], Any]
    ordered: bool = False  # lt, le, gt, ge allowed (dates)
    lookup: Callable[[Any], Q] | None = None


def _literal_error(node: ast._Node, prop: str, kind: str) -> ODataError:
    return ODataError(f"$filter: {prop} compares with {kind}, not {type(node).__name__.lower()}")


def text_value(node: ast._Node, prop: str) -> str:
    if isinstance(node, ast.Null):
        return ""
    if not isinstance(node, ast.String):
        raise _literal_error(node, prop, "a string in quotes")
    return node.val


def int_value(node: ast._Node, prop: str) -> int:
    if not isinstance(node, ast.Integer):
        raise _literal_error(node, prop, "a whole number")
    return int(node.val)


def bool_value(node: ast._Node, prop: str) -> bool:
    if not isinstance(node, ast.Boolean):
        raise _literal_error(node, prop, "true or false")
    return node.val.lower() == "true"


def guid_value(node: ast._Node, prop: str) -> int | None:
    if isinstance(node, ast.Null):
        return None
    if isinstance(node, ast.GUID | ast.String):
        try:
            return pk_of(node.val)
        except Http404:
            # A GUID of no record of ours matches nothing (a text that is not one is refused).
            if isinstance(node, ast.GUID):
                return -1
            raise ODataError(f"$filter: {prop} compares with a GUID, not {node.val!r}") from None
    raise _literal_error(node, prop, "a GUID")


def datetime_value(node: ast._Node, prop: str) -> datetime | None:
    if isinstance(node, ast.Null):
        return None
    parsed: datetime | None = None
    if isinstance(node, ast.DateTime):
        try:
            parsed = parse_datetime(node.val)
        except ValueError:
            parsed = None
    elif isinstance(node, ast.Date):
        try:
            day = parse_date(node.val)
        except ValueError:
            day = None
        parsed = datetime(day.year, day.month, day.day) if day else None
    if parsed is None:
        raise _literal_error(node, prop, "a date and time such as 2026-01-31T00:00:00Z")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        # In UTC, as the database compares it: an instant outside years 1-9999 is refused.
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _literal_error(node, prop, "a date and time within the years 1-9999") from None


@dataclass
class FilterTranslator:
    """``$filter`` text -> a ``Q`` over the allow-listed properties of ``entity``."""

    entity: str
    properties: Mapping[str, Filterable]
    _lexer: ODataLexer = field(default_factory=ODataLexer)
    _parser: ODataParser = field(default_factory=ODataParser)

    def translate(self, text: str) -> Q:
        if len(text) > MAX_FILTER_LENGTH:
            raise ODataError(f"$filter is longer than {MAX_FILTER_LENGTH} characters")
        try:
            tree = self._parser.parse(self._lexer.tokenize(text))
            return self._node(tree)
        except ODataException as exc:
            raise ODataError(f"$filter could not be read: {exc}") from None
        except RecursionError:
            raise ODataError("$filter nests too deeply") from None

    def _node(self, node: ast._Node) -> Q:
        if isinstance(node, ast.BoolOp):
            left, right = self._node(node.left), self._node(node.right)
            return left & right if isinstance(node.op, ast.And) else left | right
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ~self._node(node.operand)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            raise ODataError(
                f"$filter: the function {node.func.name}() is not supported; use eq, ne, "
                "and, or, not (and lt, le, gt, ge on dates)"
            )
        if isinstance(node, ast.CollectionLambda):
            raise ODataError("$filter: any() and all() are not supported")
        raise ODataError(f"$filter: {type(node).__name__} is not supported here")

    def _compare(self, node: ast.Compare) -> Q:
        left, right, comparator = node.left, node.right, node.comparator
        if not isinstance(left, ast.Identifier) and isinstance(right, ast.Identifier):
            left, right = right, left
            comparator = _FLIPPED.get(type(comparator), type(comparator))()
        if isinstance(left, ast.Attribute):
            raise ODataError("$filter: navigation paths (a/b) are not supported")
        if not isinstance(left, ast.Identifier):
            raise ODataError("$filter: each comparison needs a property on one side")
        name = left.name
        prop = self.properties.get(name)
        if prop is None:
            raise UnknownProperty(name, self.entity)
        if isinstance(right, ast.Identifier | ast.Attribute):
            raise ODataError("$filter: comparing two properties is not supported")
        if isinstance(comparator, ast.In):
            raise ODataError("$filter: the in operator is not supported; use or")
        value = prop.value(right, name)
        if isinstance(comparator, ast.Eq | ast.NotEq):
            if prop.lookup is not None:
                q = prop.lookup(value)
            elif value is None:
                q = Q(**{f"{prop.field}__isnull": True})
            else:
                q = Q(**{prop.field: value})
            return q if isinstance(comparator, ast.Eq) else ~q
        if not prop.ordered:
            raise ODataError(f"$filter: {name} supports only eq and ne")
        if value is None:
            raise ODataError(f"$filter: {name} is compared with null by eq or ne only")
        suffix = _ORDERED[type(comparator)]
        return Q(**{f"{prop.field}__{suffix}": value})


_ORDERED = {ast.Lt: "lt", ast.LtE: "lte", ast.Gt: "gt", ast.GtE: "gte"}
_FLIPPED: dict[type, type] = {
    ast.Lt: ast.Gt,
    ast.Gt: ast.Lt,
    ast.LtE: ast.GtE,
    ast.GtE: ast.LtE,
}


# --- the other options ------------------------------------------------------------------


def check_options(request: Request) -> None:
    """Refuse a ``$`` option we do not support (Dataverse refuses unknown ones too)."""
    for name in request.query_params:
        if name.startswith("$") and name not in QUERY_OPTIONS:
            raise ODataError(f"the query option {name} is not supported")


def parse_select(request: Request, *, entity: str, known: Collection[str]) -> list[str] | None:
    """The properties ``$select`` names (``None``: all of them)."""
    text = request.query_params.get("$select")
    if text is None or not text.strip():
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in known:
            raise UnknownProperty(name, entity)
    return names


def parse_orderby(request: Request, *, entity: str, fields: Mapping[str, str]) -> list[str]:
    """``$orderby`` as Django ordering; the primary key last, so pages are stable."""
    text = request.query_params.get("$orderby", "")
    ordering: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, direction = part.partition(" ")
        direction = direction.strip().lower()
        if name not in fields:
            raise UnknownProperty(name, entity)
        if direction not in ("", "asc", "desc"):
            raise ODataError(f"$orderby: {direction!r} is neither asc nor desc")
        ordering.append(("-" if direction == "desc" else "") + fields[name])
    return [*ordering, "-pk"] if not ordering else [*ordering, "pk"]


def _non_negative(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 9:
        raise ODataError(f"{name} must be a whole number from 0, not {text!r}")
    return int(text)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_offset: int | None
    count: int | None


def paginate(request: Request, queryset: QuerySet[Any]) -> Page:
    """One page: ``$top`` caps the whole result, ``odata.maxpagesize`` each page, and
    ``$skiptoken`` (from ``@odata.nextLink``) says where this page starts."""
    top = _non_negative(request, "$top")
    offset = _non_negative(request, "$skiptoken") or 0
    preferred = prefers(request, "odata.maxpagesize")
    size = DEFAULT_PAGE_SIZE
    if preferred is not None:
        if not preferred.isdigit() or not 0 < int(preferred[:9]):
            raise ODataError(
                f"Prefer: odata.maxpagesize must be a positive number, not {preferred!r}"
            )
        size = min(int(preferred[:9]), MAX_PAGE_SIZE)
    end = offset + size
    if top is not None:
        end = min(end, top)
    items = list(queryset[offset:end]) if end > offset else []
    more = len(items) == end - offset and queryset[end : end + 1].exists()
    if top is not None and end >= top:
        more = False
    count = None
    if request.query_params.get("$count", "").lower() == "true":
        count = queryset.count()
        if top is not None:
            count = min(count, top)
    return Page(items=items, next_offset=end if more else None, count=count)


def next_link(request: Request, offset: int) -> str:
    params = request.query_params.copy()
    params["$skiptoken"] = str(offset)
    return request.build_absolute_uri(f"{request.path}?{params.urlencode(safe='$,')}")
