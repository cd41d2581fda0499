"""Base serializers of the API: a request body field that the request does not take is a
400 that names it. Before, DRF dropped such fields in silence, so a typo
(``sheduled_at``) was a request that did something else (sent mail now), and a field the
server sets (``status``) seemed to be taken. The schema says the same: request bodies
have ``additionalProperties: false``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers


class StrictFieldsMixin:
    """Refuse input keys that are not fields of the serializer."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = set(self.fields)  # type: ignore[attr-defined]
            unknown = sorted(str(key) for key in data if key not in known)
            if unknown:
                raise serializers.ValidationError(
                    {
                        key: ["not a field this request takes (unknown, or set by the server)"]
                        for key in unknown
                    }
                )
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictSerializer(StrictFieldsMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    pass


def no_additional_properties(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: request bodies admit only their properties
    (``additionalProperties: false``), as the serializers now enforce."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component.setdefault("additionalProperties", False)
    return result
