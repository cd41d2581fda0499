"""The JSON parser of every API view: DRF's, with a nesting limit. JSON nested a few
thousand levels deep made the decoder raise RecursionError (a 500); now any body nested
deeper than CRM_API_MAX_JSON_DEPTH is a 400 that says so, before a serializer walks it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


def _too_deep(limit: int) -> ParseError:
    return ParseError(f"JSON parse error - the body is nested deeper than {limit} levels")


def json_depth_at_most(data: Any, limit: int) -> bool:
    """Whether ``data`` (parsed JSON) nests no deeper than ``limit`` (without recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.CRM_API_MAX_JSON_DEPTH
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise _too_deep(limit) from exc
        if not json_depth_at_most(data, limit):
            raise _too_deep(limit)
        return data
