"""``attachments/``: files on emails and templates, their bytes, and uploads.

Who may see an attachment is ``attachments_visible_to``; adding or removing one goes
through the attachment services, which refuse a non-draft email (409) and an actor
who may not change the email or template (403). Uploads are limited while they
stream (``uploads``), so an oversized body is refused before it is stored anywhere.
"""

from __future__ import annotations

import django_filters
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from common.api.filters import (
    IdFilter,
    NamedSearchFilter,
    StableOrderingFilter,
    StrictFilterBackend,
)
from common.api.idempotency import idempotent
from common.api.parsers import JSONParser
from common.api.schema import IDEMPOTENCY_KEY, IDEMPOTENT, LOOKUP_ANY, ErrorSerializer, errors
from crm.api import signed_in_user
from crm.models import Organization

from ..downloads import ContentMissing, attachment_response
from ..errors import AttachmentTooLarge
from ..models import ActivityMimeAttachment, Email, Template
from ..selectors import attachments_visible_to, emails_visible_to, templates_visible_to
from ..services.attachments import (
    DEFAULT_MIME_TYPE,
    attachment_delete,
    attachment_from_blob,
    attachment_store,
)
from ..uploads import base64_chunks, check_request_size, upload_handlers
from .attachment_serializers import (
    OBJECT_TYPES,
    AttachmentBase64Serializer,
    AttachmentCreatedSerializer,
    AttachmentCreateSerializer,
    AttachmentReuseSerializer,
    AttachmentSerializer,
    AttachmentUploadSerializer,
)

# The refusals of these endpoints, documented (for now) without 429.
ERRORS = {
    "conflict": "the email is not a draft: only draft emails and templates take or lose "
    "attachments",
    "forbidden": "not allowed to change this email (sender_not_allowed: not its sender or a "
    "member of its queue) or template (permission_denied: needs staff)",
    "content_too_large": "attachment_too_large: the file is over "
    "Organization.max_attachment_bytes (JSON bodies also over DATA_UPLOAD_MAX_MEMORY_SIZE)",
    "unsupported_media_type": "unsupported_media_type: send application/json or "
    "multipart/form-data",
}


class AttachmentFilter(django_filters.FilterSet):
    object_type = django_filters.ChoiceFilter(
        choices=[(t, t) for t in OBJECT_TYPES], method="filter_object_type"
    )
    object_id = IdFilter(method="filter_object_id")

    class Meta:
        model = ActivityMimeAttachment
        fields = ["object_type", "object_id", "mime_type"]

    def filter_object_type(self, queryset, name, value):
        return queryset.filter(**{f"{value}__isnull": False})

    def filter_object_id(self, queryset, name, value):
        kind = self.form.cleaned_data.get("object_type")
        if kind:
            return queryset.filter(**{f"{kind}_id": value})
        return queryset.filter(email_id=value) | queryset.filter(template_id=value)


JSON_CREATE = PolymorphicProxySerializer(
    component_name="AttachmentJsonCreate",
    serializers=[AttachmentBase64Serializer, AttachmentReuseSerializer],
    resource_type_field_name=None,
)


@extend_schema_view(
    list=extend_schema(
        summary="List the attachments you may see",
        description="Attachments of templates, and of the emails visible to you. Filter "
        "with `object_type` (email, template) and `object_id`.",
        responses={200: AttachmentSerializer(many=True), **errors(400, 404, **ERRORS)},
    ),
    retrieve=extend_schema(
        summary="Get an attachment",
        responses={200: AttachmentSerializer, **errors(404, **ERRORS)},
    ),
    destroy=extend_schema(
        summary="Remove an attachment from a draft email or a template",
        description="The stored bytes stay until the garbage collector finds them unused.",
        responses={204: None, **errors(403, 404, 409, **ERRORS)},
    ),
)
class AttachmentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = AttachmentSerializer
    lookup_value_regex = LOOKUP_ANY
    parser_classes = [JSONParser, MultiPartParser]
    filterset_class = AttachmentFilter
    filter_backends = [StrictFilterBackend, NamedSearchFilter, StableOrderingFilter]
    search_fields = ["filename"]
    ordering_fields = ["id", "created_at", "filename", "position"]

    def get_queryset(self):
        return attachments_visible_to(self.request.user).order_by("id")

    # --- uploads: limited before and while the body is read -----------------------

    def initialize_request(self, request, *args, **kwargs):
        # The handlers must be in place before anything reads the body: DRF's parser,
        # and the CSRF check of session authentication, which reads request.POST.
        if self.action_map.get(request.method.lower()) == "create" and not hasattr(
            request, "_files"
        ):
            request.upload_handlers = upload_handlers(request)
        return super().initialize_request(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.action == "create":
            check_request_size(request, limit=Organization.get().max_attachment_bytes)

    def handle_exception(self, exc):
        if isinstance(exc, RequestDataTooBig):
            exc = AttachmentTooLarge(
                "the form fields of the request are larger than DATA_UPLOAD_MAX_MEMORY_SIZE"
            )
        elif isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
            exc = exceptions.ParseError(str(exc))
        return super().handle_exception(exc)

    def perform_content_negotiation(self, request, force=False):
        # The bytes are not rendered: any Accept header gets them (or a JSON error).
        return super().perform_content_negotiation(request, force=force or self.action == "content")

    def _owner(self, object_type: str, object_id: int) -> Email | Template:
        user = self.request.user
        owner: Email | Template | None
        if object_type == "email":
            owner = (
                emails_visible_to(user)
                .select_related("sender_user", "sender_queue")
                .filter(pk=object_id)
                .first()
            )
        else:
            owner = templates_visible_to(user).filter(pk=object_id).first()
        if owner is None:
            raise exceptions.NotFound(
                f"there is no {object_type} with id {object_id} that you may see"
            )
        return owner

    @extend_schema(
        summary="Attach a file to a draft email or a template",
        description=(
            "Three forms: a `multipart/form-data` upload (`file`, `object_type`, "
            "`object_id`, optional `subject`); JSON with the bytes as base64 (`body`, "
            "`filename`, optional `mime_type`); or JSON naming bytes already stored by "
            "their SHA-256 (`attachment_id`, optional `filename`), which uploads nothing. "
            "Bytes already stored are reused (`reused: true`). The size limit is "
            "`Organization.max_attachment_bytes`, enforced while the upload streams. "
            "Accepts `Idempotency-Key`."
        ),
        parameters=[IDEMPOTENCY_KEY],
        request={
            "multipart/form-data": AttachmentUploadSerializer,
            "application/json": JSON_CREATE,
        },
        responses={
            201: AttachmentCreatedSerializer,
            **errors(*IDEMPOTENT, 403, 404, 413, 415, **ERRORS),
        },
        examples=[
            OpenApiExample(
                "base64",
                request_only=True,
                media_type="application/json",
                value={
                    "object_type": "email",
                    "object_id": 17,
                    "filename": "terms.txt",
                    "mime_type": "text/plain",
                    "body": "SGVsbG8=",
                },
            ),
            OpenApiExample(
                "reuse",
                request_only=True,
                media_type="application/json",
                value={
                    "object_type": "template",
                    "object_id": 3,
                    "attachment_id": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                },
            ),
        ],
    )
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = AttachmentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        owner = self._owner(data["object_type"], data["object_id"])
        common = {"owner": owner, "subject": data["subject"], "actor": signed_in_user(request)}
        if "attachment_id" in data:
            attachment = attachment_from_blob(
                sha256=data["attachment_id"],
                filename=data.get("filename"),
                mime_type=data.get("mime_type"),
                **common,
            )
            reused = True
        elif "file" in data:
            upload = data["file"]
            given_type = (getattr(upload, "content_type", "") or "").strip()
            attachment, reused = attachment_store(
                source=upload,
                filename=data.get("filename") or upload.name or "",
                # A browser's generic type says nothing; guess from the name instead.
                mime_type=data.get("mime_type")
                or (given_type if given_type.lower() != DEFAULT_MIME_TYPE else None),
                **common,
            )
        else:
            attachment, reused = attachment_store(
                source=base64_chunks(data["body"]),
                filename=data["filename"],
                mime_type=data.get("mime_type"),
                **common,
            )
        answer = AttachmentCreatedSerializer(
            attachment, context={"request": request, "reused": reused}
        )
        return Response(answer.data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        attachment_delete(attachment=self.get_object(), actor=signed_in_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Download the bytes of an attachment",
        description="Answers with the attachment's MIME type and "
        "`Content-Disposition: attachment`, never for display inline.",
        responses={
            (200, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, description="the bytes"),
            **errors(404, **ERRORS),
            502: OpenApiResponse(
                ErrorSerializer,
                description="attachment_corrupted: the stored bytes no longer match the "
                "attachment's size and SHA-256; none of them is sent",
            ),
        },
    )
    @action(detail=True, methods=["get"])
    def content(self, request, pk=None):
        try:
            return attachment_response(self.get_object())
        except ContentMissing as exc:
            raise exceptions.NotFound(str(exc), code=ContentMissing.code) from exc


def register(router: DefaultRouter) -> None:
    router.register("attachments", AttachmentViewSet, basename="attachment")
