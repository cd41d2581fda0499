"""SendBulkMail's ``Query`` (FetchXML, or an OData ``$filter`` on contacts) as the contact
query of our bulk job (``activities.selectors.BULK_QUERY_KEYS``).

Only what our bulk job's query can say is taken: every condition must hold (``and``),
on the contact's account (``parentcustomerid``), city (``address1_city``, any case, as
Dataverse compares text) and creation time (``createdon``), plus ``statecode`` 0
(active: every contact here is). Anything else is refused naming the part: an element,
an attribute, an operator, a property, ``or``. The XML is parsed by ``defusedxml``:
no DTD, no entities, no external references.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from django.http import Http404
from django.utils.dateparse import parse_date, parse_datetime
from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

from .ids import pk_of
from .odata import PayloadError

MAX_QUERY_CHARS = 20_000
MAX_FILTER_DEPTH = 8


class QueryRefused(PayloadError):
    """A query beyond what a bulk job can select: the message names the part."""

    code = "unsupported_query"


# --- the parts both forms share -------------------------------------------------------


def _day(value: str, where: str) -> tuple[str, bool]:
    """An ISO date or date-time as given, and whether it was a bare date."""
    value = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) and (day := parse_date(value)):
            return day.isoformat(), True
        moment = parse_datetime(value)
    except ValueError:  # well-formed but impossible, such as 2026-13-45
        moment = None
    if moment is None:
        raise QueryRefused(f"{where}: expected a date or an ISO date and time, got {value!r}")
    return moment.isoformat(), False


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


class _Query:
    """Our bulk query being built; a second condition on the same key is refused."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}

    def put(self, key: str, value: Any, where: str) -> None:
        if key in self.keys and self.keys[key] != value:
            raise QueryRefused(f"{where}: a second condition on the same property is not supported")
        self.keys[key] = value

    def condition(self, attribute: str, operator: str, value: str, where: str) -> None:
        if attribute in ("parentcustomerid", "_parentcustomerid_value", "accountid"):
            if operator != "eq":
                raise QueryRefused(f"{where}: operator {operator!r} on {attribute} (only eq)")
            try:
                account = pk_of(value)
            except Http404:
                raise QueryRefused(f"{where}: {value!r} is not an account id (a GUID)") from None
            self.put("account", account, where)
        elif attribute == "address1_city":
            if operator != "eq":
                raise QueryRefused(f"{where}: operator {operator!r} on address1_city (only eq)")
            self.put("city", value, where)
        elif attribute == "createdon":
            moment, bare_date = _day(value, where)
            if operator in ("ge", "on-or-after"):
                self.put("created_after", moment, where)
            elif operator == "lt":
                self.put("created_before", moment, where)
            elif operator == "on-or-before" and bare_date:
                self.put("created_before", _next_day(moment), where)
            elif operator == "on" and bare_date:
                self.put("created_after", moment, where)
                self.put("created_before", _next_day(moment), where)
            else:
                raise QueryRefused(
                    f"{where}: operator {operator!r} on createdon (supported: ge, lt, "
                    "on-or-after, on-or-before and on with a date)"
                )
        elif attribute == "statecode":
            if operator != "eq" or value.strip() != "0":
                raise QueryRefused(f"{where}: only statecode eq 0 (active contacts) is supported")
        else:
            raise QueryRefused(
                f"{where}: the property {attribute!r} cannot select bulk recipients "
                "(supported: parentcustomerid, address1_city, createdon, statecode)"
            )


# --- FetchXML -------------------------------------------------------------------------

FETCH_ATTRIBUTES = {"version", "mapping", "distinct", "no-lock", "output-format"}
# Elements that only shape the result (columns, order): the recipients are whole contacts.
IGNORED_ELEMENTS = {"attribute", "all-attributes", "order"}


def _refuse_attributes(element: Element, allowed: set[str], where: str) -> None:
    extra = sorted(set(element.attrib) - allowed)
    if extra:
        raise QueryRefused(f"{where}: the attribute {extra[0]!r} is not supported")


def _filter(element: Element, query: _Query, depth: int) -> None:
    if depth > MAX_FILTER_DEPTH:
        raise QueryRefused(f"filters nested deeper than {MAX_FILTER_DEPTH} are not supported")
    _refuse_attributes(element, {"type"}, "<filter>")
    if element.get("type", "and") != "and":
        raise QueryRefused(
            f"<filter type={element.get('type')!r}>: only 'and' is supported (every "
            "condition must hold)"
        )
    for child in element:
        if child.tag == "condition":
            # uiname/uitype: the lookup's display name and type that Advanced Find writes.
            _refuse_attributes(
                child, {"attribute", "operator", "value", "uiname", "uitype"}, "<condition>"
            )
            attribute, operator = child.get("attribute"), child.get("operator")
            if not attribute or not operator:
                raise QueryRefused("<condition> needs attribute and operator")
            if "value" not in child.attrib or len(child):
                raise QueryRefused(
                    f"<condition attribute={attribute!r} operator={operator!r}>: give one value "
                    "attribute (<value> elements are not supported)"
                )
            query.condition(
                attribute, operator, child.get("value", ""), f"<condition attribute={attribute!r}>"
            )
        elif child.tag == "filter":
            _filter(child, query, depth + 1)
        else:
            raise QueryRefused(f"<{child.tag}> inside <filter> is not supported")


def fetchxml_query(text: str) -> dict[str, Any]:
    """Our bulk query from a FetchXML document over contacts."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryRefused(f"the FetchXML is longer than {MAX_QUERY_CHARS:,} characters")
    try:
        root = fromstring(text)
    except DefusedXmlException as exc:
        raise QueryRefused(
            f"the FetchXML holds a DTD, an entity or an external reference: {type(exc).__name__}"
        ) from None
    except (ParseError, ValueError) as exc:
        raise QueryRefused(f"the FetchXML is not well-formed XML: {exc}") from None
    if root.tag != "fetch":
        raise QueryRefused(f"expected a <fetch> document, got <{root.tag}>")
    _refuse_attributes(root, FETCH_ATTRIBUTES, "<fetch>")
    entities = [child for child in root if child.tag == "entity"]
    others = [child.tag for child in root if child.tag != "entity"]
    if others:
        raise QueryRefused(f"<{others[0]}> inside <fetch> is not supported")
    if len(entities) != 1:
        raise QueryRefused("<fetch> needs exactly one <entity>")
    entity = entities[0]
    _refuse_attributes(entity, {"name"}, "<entity>")
    if entity.get("name") != "contact":
        raise QueryRefused(
            f"<entity name={entity.get('name')!r}>: bulk mail goes to contacts (name='contact')"
        )
    query = _Query()
    for child in entity:
        if child.tag in IGNORED_ELEMENTS:
            continue
        if child.tag == "filter":
            _filter(child, query, 1)
        else:
            raise QueryRefused(f"<{child.tag}> inside <entity> is not supported")
    return query.keys


# --- OData $filter (odata-query's grammar, as the emails set reads it) --------------------

_OPERATOR_NAMES = {
    ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge",
    ast.In: "in",
}  # fmt: skip
_LITERALS = (ast.String, ast.GUID, ast.Integer, ast.Date, ast.DateTime)


def _comparisons(node: ast._Node, query: _Query) -> None:
    if isinstance(node, ast.BoolOp):
        if not isinstance(node.op, ast.And):
            raise QueryRefused("$filter: 'or' is not supported: join comparisons with 'and' only")
        _comparisons(node.left, query)
        _comparisons(node.right, query)
        return
    if not isinstance(node, ast.Compare):
        if isinstance(node, ast.Call):
            kind = f"{node.func.name}()"
        elif isinstance(node, ast.UnaryOp):
            kind = "'not'"
        else:
            kind = type(node).__name__
        raise QueryRefused(
            f"$filter: {kind} is not supported: give comparisons such as "
            "address1_city eq 'Oslo', joined by 'and'"
        )
    if not isinstance(node.left, ast.Identifier) or not isinstance(node.right, _LITERALS):
        raise QueryRefused("$filter: each comparison is a property, an operator and a value")
    name = node.left.name
    operator = _OPERATOR_NAMES.get(type(node.comparator), type(node.comparator).__name__)
    if operator not in ("eq", "ge", "lt"):
        raise QueryRefused(
            f"$filter {name}: the operator {operator!r} is not supported (eq, ge, lt)"
        )
    query.condition(name, operator, str(node.right.val), f"$filter {name} {operator}")


def filter_query(text: str) -> dict[str, Any]:
    """Our bulk query from an OData ``$filter`` on contacts: comparisons joined by ``and``."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryRefused(f"the $filter is longer than {MAX_QUERY_CHARS:,} characters")
    if not text.strip():
        return {}
    try:
        tree = ODataParser().parse(ODataLexer().tokenize(text))
    except ODataException as exc:
        raise QueryRefused(f"$filter could not be read: {exc}") from None
    except RecursionError:
        raise QueryRefused("$filter nests too deeply") from None
    query = _Query()
    _comparisons(tree, query)
    return query.keys


def bulk_query_of(value: Any) -> dict[str, Any]:
    """SendBulkMail's ``Query`` parameter as our bulk query: a FetchExpression, a
    ``$filter`` string, or nothing (every contact)."""
    if value is None:
        return {}
    if isinstance(value, str):
        return filter_query(value)
    if not isinstance(value, dict):
        raise PayloadError(
            "Query: expected a FetchExpression object or a $filter string, got "
            f"{type(value).__name__}"
        )
    odata_type = str(value.get("@odata.type", "")).removeprefix("#")
    if odata_type.rsplit(".", 1)[-1] != "FetchExpression":
        raise QueryRefused(
            f"Query: {odata_type or 'an object without @odata.type'} is not supported; send "
            '{"@odata.type": "Microsoft.Dynamics.CRM.FetchExpression", "Query": "<fetch>..."}'
            " or a $filter string"
        )
    text = value.get("Query", value.get("query"))
    if not isinstance(text, str):
        raise PayloadError("Query.Query: expected the FetchXML as a string")
    return fetchxml_query(text)
