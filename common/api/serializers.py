"""Base serializers of the API: a request body field that the request does not take is a
400 that names it. Before, DRF dropped such fields in silence, so a typo
(``sheduled_at``) was a request that did something else (sent mail now), and a field the
server sets (``status``) seemed to be taken. The schema says the same: request bodies
have ``additionalProperties: false``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import QueryDict
from rest_framework import serializers


class StrictFieldsMixin:
    # Refuses input keys that are not fields of the serializer, and text longer than its
    # field's max_length before any trimming. (A comment, not a docstring: the schema
    # would show a docstring as the description of every serializer.)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            fields = self.fields  # type: ignore[attr-defined]
            unknown = sorted(str(key) for key in data if key not in fields)
            if unknown:
                raise serializers.ValidationError(
                    {
                        key: ["not a field this request takes (unknown, or set by the server)"]
                        for key in unknown
                    }
                )
            refused = _too_long(fields, data)
            if not isinstance(data, QueryDict):  # JSON: its types are the schema's
                refused = {**_wrong_types(fields, data), **refused}
            if refused:
                raise serializers.ValidationError(refused)
        return super().to_internal_value(data)  # type: ignore[misc]


def _too_long(fields: Mapping[str, serializers.Field], data: Mapping) -> dict[str, list[str]]:
    """DRF trims a text field's surrounding whitespace before it checks ``max_length``, so
    101 characters with a leading line break passed a limit of 100 that the schema
    (``maxLength``) states for the text as sent. The limit holds for the text as sent."""
    errors = {}
    for name, field in fields.items():
        value = data.get(name)
        limit = getattr(field, "max_length", None)
        if (
            isinstance(field, serializers.CharField)
            and not field.read_only
            and isinstance(value, str)
            and limit is not None
            and len(value) > limit
        ):
            errors[name] = [f"Ensure this field has no more than {limit} characters."]
    return errors


class StrictSerializer(StrictFieldsMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    pass


# The JSON types of the schema's simple fields. DRF also takes 5 and 5.0 for a text
# field, "5" and 5.0 for an integer or an id, and "yes", "on" or 1 for a boolean: each a
# request the schema calls invalid that did something. Other fields check their input.
_JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "a boolean (true or false)"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.PrimaryKeyRelatedField, (int,), "an integer id"),
    (serializers.CharField, (str,), "a string"),
    (serializers.ChoiceField, (str,), "a string"),
    (serializers.DateTimeField, (str,), "a string (an ISO 8601 date and time)"),
)


_JSON_NAMES = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
_JSON_NAMES.update({list: "an array", dict: "an object"})


def _json_type_error(field: serializers.Field, value: Any) -> str | None:
    if value is None:
        return None  # the field's own allow_null decides
    if isinstance(field, serializers.ManyRelatedField | serializers.ListField):
        child = (
            field.child_relation if isinstance(field, serializers.ManyRelatedField) else field.child
        )
        if isinstance(value, list):
            for item in value:
                error = _json_type_error(child, item)
                if error:
                    return f"each item must be {error.removeprefix('must be ')}"
        return None  # not a list: the field says so itself
    for kind, types, name in _JSON_TYPES:
        if type(field) is kind or isinstance(field, kind):
            valid = isinstance(value, types) and not (bool not in types and isinstance(value, bool))
            return None if valid else f"must be {name}"
    return None


def _wrong_types(fields: Mapping[str, serializers.Field], data: Mapping) -> dict[str, list[str]]:
    errors = {}
    for name, field in fields.items():
        if name in data and not field.read_only:
            error = _json_type_error(field, data[name])
            if error:
                errors[name] = [f"{error}, not {_JSON_NAMES.get(type(data[name]), 'that')}"]
    return errors


def no_additional_properties(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: request bodies admit only their properties
    (``additionalProperties: false``), as the serializers now enforce."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component.setdefault("additionalProperties", False)
    return result
