"""``templates``: the email templates a caller may use, read-only, in Dataverse's names.

What ``/api/v1/templates/`` lists (``templates_visible_to``), so that a client can find
the ``TemplateId`` that SendEmailFromTemplate, InstantiateTemplate and SendBulkMail
take. Templates are written in ``/api/v1/`` and the staff pages, not here.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from activities.models import Template
from activities.selectors import templates_visible_to

from .approvals import check_query_options, one_of, select_of, top_of
from .ids import guid_of
from .odata import DynamicsView, context_url
from .query import Filterable, FilterTranslator, guid_value, text_value
from .views import GUID, TAG, documented

# Our record types as Dataverse's templatetypecode (the entity a template is for).
TYPE_CODES = {"global": "global", "contact": "contact", "account": "account", "user": "systemuser"}
TYPE_OF_CODE = {code: ours for ours, code in TYPE_CODES.items()}
# Our language tags as Windows LCIDs (languagecode); others are null.
LANGUAGE_CODES = {
    "en": 1033, "de": 1031, "fr": 1036, "es": 3082, "it": 1040, "nl": 1043, "nb": 1044,
    "no": 1044, "sv": 1053, "da": 1030, "fi": 1035, "pt": 2070, "pl": 1045,
}  # fmt: skip

TEMPLATE_FILTER = FilterTranslator(
    entity="template",
    properties={
        "templateid": Filterable("pk", guid_value),
        "title": Filterable("title", text_value),
        "templatetypecode": Filterable(
            "record_type", text_value, lookup=lambda code: Q(record_type=TYPE_OF_CODE.get(code, ""))
        ),
    },
)


def template_entity(template: Template) -> dict[str, Any]:
    return {
        "templateid": guid_of(template.pk),
        "title": template.title,
        "subject": template.subject,
        "body": template.body_html,
        "templatetypecode": TYPE_CODES.get(template.record_type, template.record_type),
        "languagecode": LANGUAGE_CODES.get(template.language.split("-")[0].lower()),
    }


class TemplateList(DynamicsView):
    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_templates_list",
        summary="templates: the email templates (read-only)",
        responses=documented(),
    )
    def get(self, request: Request) -> Response:
        check_query_options(request, ("$select", "$top", "$filter"))
        rows = templates_visible_to(request.user).order_by("title", "pk")
        text = request.query_params.get("$filter", "").strip()
        if text:
            rows = rows.filter(TEMPLATE_FILTER.translate(text))
        return Response(
            {
                "@odata.context": context_url(request, "templates"),
                "value": [
                    select_of(request, template_entity(row), "template")
                    for row in rows[: top_of(request)]
                ],
            }
        )


class TemplateDetail(DynamicsView):
    @extend_schema(
        tags=[TAG],
        operation_id="dynamics_template_retrieve",
        summary="templates(<guid>)",
        parameters=[GUID],
        responses=documented(),
    )
    def get(self, request: Request, guid: str) -> Response:
        check_query_options(request, ("$select",))
        template = one_of(templates_visible_to(request.user), guid)
        return Response(
            {
                "@odata.context": context_url(request, "templates/$entity"),
                **select_of(request, template_entity(template), "template"),
            }
        )
