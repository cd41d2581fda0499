"""A path converter for OData's key segment, parentheses included: ``systemusers(<guid>)``
is routed as ``systemusers<odatakey:key>``, so the route's pattern has no escaped
parenthesis (which drf-spectacular's path simplifier reads as a group: ``{var}``) and
the schema names the parameter."""

from __future__ import annotations


class ODataKeyConverter:
    regex = r"\([^()/]*\)"

    def to_python(self, value: str) -> str:
        return value[1:-1]

    def to_url(self, value: str) -> str:
        return f"({value})"
