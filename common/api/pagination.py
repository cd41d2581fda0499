"""``?page=N&page_size=M`` (at most 200), as the schema says.

DRF's own pagination takes a ``page_size`` it cannot read (``abc``, ``0``, empty) for
the default size and an empty ``page`` for the first page: a typo looked like a
request that worked. Here a ``page_size`` that is not a whole number from 1 is a 400
naming it; a ``page`` that is not one of the list's pages, also an empty one, is a 404
(API.md). A ``page_size`` above 200 is capped, as documented.
"""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination as DRFPageNumberPagination


class PageNumberPagination(DRFPageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    last_page_strings = ()  # the schema's page is an integer: "last" is not one

    def get_page_size(self, request):
        text = request.query_params.get(self.page_size_query_param)
        if text is None:
            return self.page_size
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise serializers.ValidationError(
                {self.page_size_query_param: ["expected a whole number from 1 (at most 200 used)"]}
            )
        return min(int(text), self.max_page_size)

    def get_page_number(self, request, paginator):
        # An empty page is not the first page: the paginator refuses it (a 404).
        return request.query_params.get(self.page_query_param, 1)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Number of results to return per page (at most {self.max_page_size}; "
                    "a larger number is taken as that)."
                )
        return parameters
