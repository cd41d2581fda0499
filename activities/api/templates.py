"""``templates/``: read by anyone signed in, written by staff; ``instantiate`` renders one."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from crm.api.idempotency import idempotent
from crm.api.permissions import StaffForWrites

from ..models import ActivityMimeAttachment, Template
from ..selectors import templates_visible_to
from ..services.templates import template_delete, template_render, template_save
from .problems import (
    BAD_REQUEST,
    LOOKUP_ANY,
    NO_PAGE,
    NOT_FOUND,
    UNAUTHORIZED,
    TemplateProblemSerializer,
    problem,
)
from .template_serializers import (
    InstantiateSerializer,
    RenderedTemplateSerializer,
    TemplateSerializer,
)

STAFF_ONLY = problem("writing templates needs a staff account (is_staff)")
TEMPLATE_ERROR = OpenApiResponse(
    TemplateProblemSerializer,
    description=(
        "invalid input, or a template error naming the part and the line: "
        '{"detail": "template error in HTML body, line 3: ...", "code": "template_error", '
        '"line": 3}'
    ),
)


@extend_schema_view(
    list=extend_schema(
        summary="List templates",
        responses={
            200: TemplateSerializer(many=True),
            400: BAD_REQUEST,
            401: UNAUTHORIZED,
            404: NO_PAGE,
        },
    ),
    retrieve=extend_schema(
        summary="Get a template",
        responses={200: TemplateSerializer, 401: UNAUTHORIZED, 404: NOT_FOUND},
    ),
    create=extend_schema(
        summary="Create a template (staff)",
        description="The subject and bodies must compile and render; a template error is "
        "a 400 that names the part and the line. Accepts `Idempotency-Key`.",
        responses={
            201: TemplateSerializer,
            400: TEMPLATE_ERROR,
            401: UNAUTHORIZED,
            403: STAFF_ONLY,
        },
    ),
    partial_update=extend_schema(
        summary="Change a template (staff)",
        responses={
            200: TemplateSerializer,
            400: TEMPLATE_ERROR,
            401: UNAUTHORIZED,
            403: STAFF_ONLY,
            404: NOT_FOUND,
        },
    ),
    destroy=extend_schema(
        summary="Delete a template (staff)",
        description="Emails made from it keep their content and attachments; only their "
        "link to the template is cleared.",
        responses={204: None, 401: UNAUTHORIZED, 403: STAFF_ONLY, 404: NOT_FOUND},
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
        template = template_save(template=Template(**serializer.validated_data), actor=request.user)
        return self._answer(template, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        template = self.get_object()
        serializer = self.get_serializer(template, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        for name, value in serializer.validated_data.items():
            setattr(template, name, value)
        template_save(template=template, actor=request.user)
        return self._answer(template)

    def destroy(self, request, *args, **kwargs):
        template_delete(template=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Render a template for one record without sending",
        request=InstantiateSerializer,
        responses={
            200: RenderedTemplateSerializer,
            400: TEMPLATE_ERROR,
            401: UNAUTHORIZED,
            404: NOT_FOUND,
        },
    )
    @action(detail=True, methods=["post"])
    def instantiate(self, request, pk=None):
        template = self.get_object()
        serializer = InstantiateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rendered = template_render(
            template=template,
            regarding=serializer.validated_data.get("regarding"),
            sender=serializer.validated_data.get("sender") or request.user,
        )
        return Response(RenderedTemplateSerializer(rendered).data)


def register(router: DefaultRouter) -> None:
    router.register("templates", TemplateViewSet, basename="template")
