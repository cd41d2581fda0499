"""Query-parameter filters whose bad values are a 400 naming the parameter, never ignored.

django-filter's own ``BooleanFilter`` drops a value it does not understand and its
``NumberFilter`` takes ``1.5`` for an id; these refuse them instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.filters import OrderingFilter, SearchFilter

TRUE_VALUES = frozenset({"true", "1", "yes"})
FALSE_VALUES = frozenset({"false", "0", "no"})


class _StrictBooleanField(forms.Field):
    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in TRUE_VALUES:
            return True
        if text in FALSE_VALUES:
            return False
        raise forms.ValidationError("expected true or false", code="invalid")


class StrictBooleanFilter(filters.BooleanFilter):
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``); anything else is a 400."""

    field_class = _StrictBooleanField  # type: ignore[assignment]  # the stub allows NullBooleanField only

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(*args, **kwargs)


MAX_ID = 2**63 - 1  # a BigAutoField; larger values overflow the database driver


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(filters.NumberFilter):
    """A record id: a positive integer (at most a 64-bit one)."""

    field_class = forms.IntegerField  # type: ignore[assignment]  # the stub allows DecimalField only

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


def _in_utc(moment: datetime) -> datetime:
    """An aware date and time in UTC. Python takes offsets up to ±23:59, PostgreSQL only
    up to ±15:59 (a query with ``+21:58`` was a 500); UTC names the same instant. An
    instant outside the years 1-9999 once in UTC is refused."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise forms.ValidationError(
            "the date and time is out of range (years 1 to 9999 in UTC)", code="invalid"
        ) from None


class UtcIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        moment = super().to_python(value)
        return None if moment is None else _in_utc(moment)


class UtcIsoDateTimeFilter(filters.IsoDateTimeFilter):
    """django-filter's ISO 8601 filter, the value given to the database in UTC."""

    field_class = UtcIsoDateTimeField


class _DateOrDateTimeField(forms.Field):
    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip()
        try:
            moment = parse_datetime(text)
            day = None if moment else parse_date(text)
        except ValueError:
            moment = day = None
        if day is not None:
            moment = datetime.combine(day, time.min)
        if moment is None:
            raise forms.ValidationError(
                "expected a date (2026-01-01) or a date and time (2026-01-01T08:00:00Z)",
                code="invalid",
            )
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        return _in_utc(moment)


@extend_schema_field(
    {
        "type": "string",
        "anyOf": [{"format": "date"}, {"format": "date-time"}],
        "description": "a date (the start of that day) or an ISO 8601 date and time",
        "example": "2026-01-01",
    }
)
class DateOrDateTimeFilter(filters.Filter):
    field_class = _DateOrDateTimeField


# The schema type of the filters above, for drf-spectacular.
extend_schema_field(OpenApiTypes.BOOL)(StrictBooleanFilter)
extend_schema_field(OpenApiTypes.INT)(IdFilter)


class StableOrderingFilter(OrderingFilter):
    """``?ordering=`` as DRF's, with the primary key as the last key (in the direction of
    the key before it), so that pages never overlap or skip rows."""

    def get_ordering(self, request, queryset, view):
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not any(field.lstrip("-") in ("pk", "id") for field in ordering):
            ordering.append("-pk" if ordering and ordering[-1].startswith("-") else "pk")
        return ordering


class NamedSearchFilter(SearchFilter):
    """``?search=`` as DRF's, but a bad term (a NUL character) is ``{"search": [...]}``."""

    def get_search_terms(self, request):
        try:
            return super().get_search_terms(request)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({self.search_param: exc.detail}) from exc


# --- the filter backend of every API list ----------------------------------------------


def _takes_free_text(filter_field: filters.Filter) -> bool:
    return isinstance(filter_field, filters.CharFilter)


class StrictFilterBackend(filters.DjangoFilterBackend):
    """django-filter's backend, but an empty value of a parameter that is not free text
    (an id, a choice, a boolean, a date) is a 400 naming it, as any other value that does
    not parse. django-filter reads an empty value as "no filter" (an HTML form's blank
    field); in the API, ``?status=`` or ``?account=`` was a request for everything that
    looked like a filtered one, and the schema says such a value is not valid. The staff
    pages keep django-filter's reading: they use the filter sets without this backend."""

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is not None:
            empty = {
                name: ["a value is required: give one, or leave the parameter out"]
                for name, filter_field in filterset.filters.items()
                if not _takes_free_text(filter_field) and "" in request.query_params.getlist(name)
            }
            if empty:
                raise serializers.ValidationError(empty)
        return super().filter_queryset(request, queryset, view)


class StrictFilterExtension(DjangoFilterExtension):
    """The schema of ``StrictFilterBackend``'s parameters: drf-spectacular's, with the
    bounds of the id filters (``minimum``, ``maximum``) the server enforces."""

    target_class = "common.api.filters.StrictFilterBackend"
    priority = 1

    def resolve_filter_field(self, auto_schema, model, filterset_class, field_name, filter_field):
        parameters = super().resolve_filter_field(
            auto_schema, model, filterset_class, field_name, filter_field
        )
        if isinstance(filter_field, IdFilter):
            for parameter in parameters:
                for bound in ("min_value", "max_value"):
                    if filter_field.extra.get(bound) is not None:
                        key = "minimum" if bound == "min_value" else "maximum"
                        parameter["schema"][key] = filter_field.extra[bound]
        return parameters
