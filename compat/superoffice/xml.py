"""XML in and out, for SuperOffice clients that send ``application/xml`` or ``text/xml``.

SuperOffice's WebAPI serialises its carriers as .NET data contracts: an element per
property, a list as an element holding one element per item (``<To><EMailAddress>
...</EMailAddress></To>``), ``i:nil="true"`` for null. A body is read into the same
dictionaries as JSON, so the same carriers check it: namespaces are dropped, the
properties that are lists are known by name, and every other leaf is text.

Parsed with defusedxml and DTDs forbidden, so no entity expansion ("billion laughs"),
no external entity and no DTD reaches the parser; the body's size and nesting are
bounded as for JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from django.conf import settings
from rest_framework import renderers
from rest_framework.exceptions import ParseError as APIParseError
from rest_framework.parsers import BaseParser

XSI = "http://www.w3.org/2001/XMLSchema-instance"

# The properties of the carriers that are lists, and the element name of their items.
LIST_ITEMS = {
    "emails": "EMailEntity",
    "to": "EMailAddress",
    "cc": "EMailAddress",
    "bcc": "EMailAddress",
    "attachments": "EMailAttachment",
    "customheaderlist": "EMailCustomHeader",
    "values": "string",
    "duplicatepersonids": "int",
}
BOOLEANS = {"usessl"}
TOP_LIST_ITEM = "EMailEntity"
TOP_LIST = "ArrayOfEMailEntity"
ERROR_ROOT = "ExceptionInfo"


def _local(tag: Any) -> str:
    return str(tag).rpartition("}")[2]


def _is_nil(element: Element) -> bool:
    return any(_local(k) == "nil" and v.strip() == "true" for k, v in element.attrib.items())


def _depth_at_most(root: Element, limit: int) -> bool:
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in element)
    return True


def _value(element: Element, name: str) -> Any:
    if _is_nil(element):
        return None
    children = list(element)
    key = name.lower()
    if key in LIST_ITEMS:
        return [_value(child, _local(child.tag)) for child in children]
    if children:
        result: dict[str, Any] = {}
        for child in children:
            child_name = _local(child.tag)
            if child_name in result:
                raise APIParseError(f"XML parse error - <{child_name}> given twice in <{name}>")
            result[child_name] = _value(child, child_name)
        return result
    text = element.text or ""
    if key in BOOLEANS and text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    return text


class SuperOfficeXMLParser(BaseParser):
    media_type = "application/xml"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(body) > limit:
            raise APIParseError(f"XML parse error - the body is larger than {limit} bytes")
        try:
            root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except (ParseError, DefusedXmlException, ValueError) as exc:
            raise APIParseError(f"XML parse error - {exc}") from None
        depth = settings.CRM_API_MAX_JSON_DEPTH
        if not _depth_at_most(root, depth):
            raise APIParseError(f"XML parse error - the body is nested deeper than {depth} levels")
        value = _value(root, _local(root.tag))
        return value if value != "" else {}


class SuperOfficeTextXMLParser(SuperOfficeXMLParser):
    media_type = "text/xml"


# Characters XML 1.0 cannot hold (C0 controls but tab, line feed and carriage return;
# surrogates; U+FFFE, U+FFFF): an echoed value holding one is answered with U+FFFD.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: Any) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def _element(parent: Element, name: str, value: Any) -> None:
    element = SubElement(parent, name)
    _fill(element, name, value)


def _fill(element: Element, name: str, value: Any) -> None:
    if value is None:
        element.set(f"{{{XSI}}}nil", "true")
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _element(element, str(key), item)
    elif isinstance(value, list | tuple):
        item_name = LIST_ITEMS.get(name.lower(), "item")
        for item in value:
            _element(element, item_name, item)
    else:
        element.text = _text(value)


class SuperOfficeXMLRenderer(renderers.BaseRenderer):
    """The answer as SuperOffice's XML: ``<ArrayOfEMailEntity>`` of ``<EMailEntity>``, or
    an error as ``<ExceptionInfo>``."""

    media_type = "application/xml"
    format = "xml"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        if isinstance(data, list):
            root = Element(TOP_LIST)
            for item in data:
                _element(root, TOP_LIST_ITEM, item)
        else:
            root = Element(ERROR_ROOT)
            _fill(root, ERROR_ROOT, data)
        return tostring(root, encoding="utf-8", xml_declaration=True)


class SuperOfficeTextXMLRenderer(SuperOfficeXMLRenderer):
    media_type = "text/xml"
