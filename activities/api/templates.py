"""``templates/``: read by anyone signed in, written by staff; ``instantiate`` renders one."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from common.api.filters import NamedSearchFilter, StableOrderingFilter, StrictFilterBackend
from common.api.idempotency import idempotent
from common.api.parsers import JSONParser
from common.api.permissions import StaffForWrites
from common.api.schema import IDEMPOTENCY_KEY, IDEMPOTENT, LOOKUP_ANY, TEMPLATE_ERROR, errors
from crm.api import signed_in_user

from ..models import ActivityMimeAttachment, Template
from ..selectors import templates_visible_to
from ..services.templates import template_delete, template_render, template_save
from .template_serializers import (
    InstantiateSerializer,
    RenderedTemplateSerializer,
    TemplateSerializer,
)

# The refusals of these endpoints, documented (for now) without 429. The 400 of a
# write or a rendering may be a template error; a list's 400 is a bad filter.
ERRORS: dict[str, str | OpenApiResponse | None] = {
    "forbidden": "writing templates needs a staff account (is_staff)",
}
WRITE_ERRORS: dict[str, str | OpenApiResponse | None] = {**ERRORS, "bad_request": TEMPLATE_ERROR}


@extend_schema_view(
    list=extend_schema(
        summary="List templates",
        responses={200: TemplateSerializer(many=True), **errors(400, 404, **ERRORS)},
    ),
    retrieve=extend_schema(
        summary="Get a template",
        responses={200: TemplateSerializer, **errors(404, **ERRORS)},
    ),
    create=extend_schema(
        summary="Create a template (staff)",
        description="The subject and bodies must compile and render; a template error is "
        "a 400 that names the part and the line. Accepts `Idempotency-Key`.",
        parameters=[IDEMPOTENCY_KEY],
        responses={201: TemplateSerializer, **errors(*IDEMPOTENT, 403, **WRITE_ERRORS)},
    ),
    partial_update=extend_schema(
        summary="Change a template (staff)",
        responses={200: TemplateSerializer, **errors(400, 403, 404, **WRITE_ERRORS)},
    ),
    destroy=extend_schema(
        summary="Delete a template (staff)",
        description="Emails made from it keep their content and attachments; only their "
        "link to the template is cleared.",
        responses={204: None, **errors(403, 404, **ERRORS)},
    ),
)
class TemplateViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = TemplateSerializer
    permission_classes = [IsAuthenticated, StaffForWrites]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = LOOKUP_ANY
    parser_classes = [JSONParser]
    filter_backends = [StrictFilterBackend, NamedSearchFilter, StableOrderingFilter]
    filterset_fields = ["record_type", "language"]
    search_fields = ["title", "subject", "description"]
    ordering_fields = ["id", "title", "created_at", "modified_at"]
    ordering = ["title", "id"]

    def get_queryset(self):
        return templates_visible_to(self.request.user).prefetch_related(
            Prefetch(
                "attachments",
                queryset=ActivityMimeAttachment.objects.select_related("blob").order_by(
                    "position", "id"
                ),
            )
        )

    def get_permissions(self):
        if self.action == "instantiate":  # renders without writing: any signed-in user
            return [IsAuthenticated()]
        return super().get_permissions()

    def _answer(self, template: Template, http_status: int = status.HTTP_200_OK) -> Response:
        template = self.get_queryset().get(pk=template.pk)
        return Response(self.get_serializer(template).data, status=http_status)

    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        template = template_save(
            template=Template(**serializer.validated_data), actor=signed_in_user(request)
        )
        return self._answer(template, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        template = self.get_object()
        serializer = self.get_serializer(template, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        for name, value in serializer.validated_data.items():
            setattr(template, name, value)
        template_save(template=template, actor=signed_in_user(request))
        return self._answer(template)

    def destroy(self, request, *args, **kwargs):
        template_delete(template=self.get_object(), actor=signed_in_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Render a template for one record without sending",
        request=InstantiateSerializer,
        responses={200: RenderedTemplateSerializer, **errors(400, 404, **WRITE_ERRORS)},
    )
    @action(detail=True, methods=["post"])
    def instantiate(self, request, pk=None):
        template = self.get_object()
        serializer = InstantiateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rendered = template_render(
            template=template,
            regarding=serializer.validated_data.get("regarding"),
            sender=serializer.validated_data.get("sender") or signed_in_user(request),
        )
        return Response(RenderedTemplateSerializer(rendered).data)


def register(router: DefaultRouter) -> None:
    router.register("templates", TemplateViewSet, basename="template")
