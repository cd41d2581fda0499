"""Microsoft Graph's mail endpoints over our services: thin views.

Every read starts from ``emails_visible_to`` (the visibility of ``/api/v1/emails/``;
``me`` is the token's user), every write is one call of ``actions`` or of a service,
and every refusal answers in Graph's error shape (``errors.graph_error``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from activities.downloads import ContentMissing, attachment_response
from activities.errors import AttachmentTooLarge, InvalidHeader
from activities.models import ActivityMimeAttachment, Email
from activities.selectors import email_list_queryset, emails_visible_to
from activities.services.attachments import attachment_delete, attachment_store
from activities.services.emails import email_delete, email_send
from activities.uploads import base64_chunks, check_request_size
from common.api.parsers import JSONParser
from compat.base import VendorAPIView
from crm.api import signed_in_user
from crm.models import Organization

from . import actions, ids, query, reading
from .errors import GraphError, graph_error
from .mailboxes import mailbox_named
from .writing import FOLDERS, attachment_resource, message_resource

TAG = "Microsoft Graph"
GRAPH_JSON = {"type": "object", "additionalProperties": True}
MESSAGE_ID = OpenApiParameter(
    "message_id", str, OpenApiParameter.PATH, description="a message id (`AAMk...`)"
)


def _graph_schema(summary: str, *, request: Any = None, responses: Any = None, **kwargs: Any):
    return extend_schema(
        tags=[TAG],
        summary=summary,
        request=request,
        responses=responses or {200: OpenApiResponse(GRAPH_JSON)},
        **kwargs,
    )


class GraphView(VendorAPIView):
    """Graph's error shape, JSON bodies within the attachment limit."""

    error_shape = staticmethod(graph_error)
    parser_classes = [JSONParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method in ("POST", "PATCH"):
            check_request_size(request, limit=Organization.get().max_attachment_bytes)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RequestDataTooBig):
            exc = AttachmentTooLarge("the request body is larger than the server takes")
        elif isinstance(exc, TooManyFieldsSent):
            exc = exceptions.ParseError(str(exc))
        elif isinstance(exc, InvalidHeader) and exc.field == "headers":
            exc = GraphError(exc.message, code="InvalidInternetMessageHeader")
        elif isinstance(exc, exceptions.ParseError):
            exc = GraphError(
                "Unable to read JSON request payload. Please ensure Content-Type header is set "
                f"and payload is of valid JSON format. ({exc.detail})"
            )
        elif isinstance(exc, exceptions.UnsupportedMediaType):
            exc = GraphError(
                f"{exc.detail} Send the message as JSON (application/json): the MIME format "
                "(text/plain) is not supported by this server.",
                status=415,
            )
        return super().handle_exception(exc)

    def visible(self) -> QuerySet[Email]:
        return emails_visible_to(self.request.user)

    def message(self, message_id: str) -> Email:
        pk = ids.message_pk(message_id)
        email = email_list_queryset(self.visible().filter(pk=pk)).first()
        if email is None:
            raise GraphError(
                "The specified object was not found in the store.",
                code="ErrorItemNotFound",
                status=404,
            )
        return email

    def message_answer(self, email_id: int, http_status: int = 200) -> Response:
        email = email_list_queryset(Email.objects.filter(pk=email_id)).get()
        select = query.single_select(self.request.query_params)
        return Response(
            message_resource(email, request=self.request, select=select), status=http_status
        )


class CatchAllView(GraphView):
    """Any other path under ``/graph/v1.0/``: Graph's answer to an unknown segment."""

    permission_classes = [AllowAny]
    schema = None  # not an endpoint: left out of the OpenAPI schema

    def _refuse(self, request: Request, path: str = "", **kwargs: Any) -> Response:
        segments = path.strip("/").split("/")
        # The first segment this server does not know: after me, or after users/{id}.
        skip = 1 if segments[0].lower() == "me" else 2 if segments[0].lower() == "users" else 0
        segment = segments[skip] if len(segments) > skip else segments[-1]
        raise GraphError(f"Resource not found for the segment '{segment}'.")

    get = post = patch = put = delete = _refuse


# --- me, sendMail ------------------------------------------------------------------------


class MeView(GraphView):
    @_graph_schema(
        "The signed-in user (Graph's user resource, a few properties)", operation_id="graph_me_get"
    )
    def get(self, request: Request) -> Response:
        user = signed_in_user(request)
        return Response(
            {
                "id": str(user.pk),
                "displayName": user.get_full_name() or user.get_username(),
                "givenName": user.first_name or None,
                "surname": user.last_name or None,
                "mail": user.email or None,
                "userPrincipalName": user.get_username(),
            }
        )


class SendMailView(GraphView):
    @_graph_schema(
        "Send a message in one call (sendMail)",
        operation_id="graph_send_mail",
        description=(
            "`POST /me/sendMail` sends as the token's user; `POST /users/{id | "
            "userPrincipalName}/sendMail` as that user (an id, a username or an address) or "
            "queue (its address), under our sender rules. One email is created with its "
            "attachments and queued for delivery, or nothing is written. 202, no body."
        ),
        request={"application/json": GRAPH_JSON},
        responses={202: None},
    )
    def post(self, request: Request, user: str | None = None) -> Response:
        actor = signed_in_user(request)
        mailbox = actor if user is None else mailbox_named(user)
        given, _save_to_sent_items = reading.send_mail(request.data)
        actions.mail_send(actor=actor, mailbox=mailbox, given=given)
        return Response(status=status.HTTP_202_ACCEPTED)


# --- messages ----------------------------------------------------------------------------


class MessagesView(GraphView):
    @_graph_schema(
        "List messages ($top, $skip, $select, $orderby, $filter, $count)",
        operation_id="graph_messages_list",
        parameters=[
            OpenApiParameter("$top", int, description="page size (default 10, at most 1000)"),
            OpenApiParameter("$skip", int),
            OpenApiParameter("$select", str),
            OpenApiParameter("$orderby", str),
            OpenApiParameter("$filter", str),
            OpenApiParameter("$count", bool),
        ],
    )
    def get(self, request: Request, folder: str | None = None) -> Response:
        emails = self.visible()
        if folder is not None:
            known = FOLDERS.get(folder.lower())
            if known is None:
                raise GraphError(
                    f"The specified folder '{folder}' could not be found in the store.",
                    code="ErrorItemNotFound",
                    status=404,
                )
            emails = emails.filter(direction=known[0], status__in=known[1])
        options = query.list_options(request.query_params)
        emails = query.apply(emails, options)
        page = list(email_list_queryset(emails)[options.skip : options.skip + options.top + 1])
        body: dict[str, Any] = {}
        if options.count:
            body["@odata.count"] = emails.count()
        body["value"] = [
            message_resource(email, request=request, select=options.select)
            for email in page[: options.top]
        ]
        if len(page) > options.top:
            params = {f"${k}": v for k, v in (options.raw or {}).items() if k != "skip"}
            params["$top"] = str(options.top)
            params["$skip"] = str(options.skip + options.top)
            body["@odata.nextLink"] = request.build_absolute_uri(
                f"{request.path}?{urlencode(params)}"
            )
        return Response(body)

    @_graph_schema(
        "Create a draft",
        operation_id="graph_messages_create",
        request={"application/json": GRAPH_JSON},
        responses={201: OpenApiResponse(GRAPH_JSON)},
    )
    def post(self, request: Request, folder: str | None = None) -> Response:
        if folder is not None and folder.lower() != "drafts":
            raise GraphError("New messages are created as drafts (mailFolders/drafts/messages).")
        actor = signed_in_user(request)
        email = actions.draft_create(
            actor=actor, mailbox=actor, given=reading.message(request.data)
        )
        return self.message_answer(email.pk, status.HTTP_201_CREATED)


class MessageView(GraphView):
    @_graph_schema(
        "One message ($select)", operation_id="graph_message_get", parameters=[MESSAGE_ID]
    )
    def get(self, request: Request, message_id: str, folder: str | None = None) -> Response:
        return self.message_answer(self.message(message_id).pk)

    @_graph_schema(
        "Update a draft",
        operation_id="graph_message_update",
        parameters=[MESSAGE_ID],
        request={"application/json": GRAPH_JSON},
    )
    def patch(self, request: Request, message_id: str, folder: str | None = None) -> Response:
        email = self.message(message_id)
        given = reading.message(request.data, attachments=False)
        actions.draft_update(email=email, actor=signed_in_user(request), given=given)
        return self.message_answer(email.pk)

    @_graph_schema(
        "Delete a message",
        operation_id="graph_message_delete",
        parameters=[MESSAGE_ID],
        responses={204: None},
    )
    def delete(self, request: Request, message_id: str, folder: str | None = None) -> Response:
        email_delete(email=self.message(message_id), actor=signed_in_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MessageSendView(GraphView):
    @_graph_schema(
        "Send a draft",
        operation_id="graph_message_send",
        parameters=[MESSAGE_ID],
        responses={202: None},
    )
    def post(self, request: Request, message_id: str) -> Response:
        email_send(email=self.message(message_id), actor=signed_in_user(request))
        return Response(status=status.HTTP_202_ACCEPTED)


# --- attachments -------------------------------------------------------------------------


class AttachmentsView(GraphView):
    @_graph_schema(
        "List a message's attachments (without contentBytes)",
        operation_id="graph_attachments_list",
        parameters=[MESSAGE_ID],
    )
    def get(self, request: Request, message_id: str) -> Response:
        email = self.message(message_id)
        return Response({"value": [attachment_resource(a) for a in email.attachments.all()]})

    @_graph_schema(
        "Add a fileAttachment to a draft",
        operation_id="graph_attachments_create",
        parameters=[MESSAGE_ID],
        request={"application/json": GRAPH_JSON},
        responses={201: OpenApiResponse(GRAPH_JSON)},
    )
    def post(self, request: Request, message_id: str) -> Response:
        email = self.message(message_id)
        given = reading.attachment(request.data, "the attachment")
        attachment, _reused = attachment_store(
            owner=email,
            source=base64_chunks(given.content_bytes),
            filename=given.name,
            mime_type=given.content_type,
            actor=signed_in_user(request),
        )
        return Response(attachment_resource(attachment), status=status.HTTP_201_CREATED)


class AttachmentView(GraphView):
    def attachment(self, message_id: str, attachment_id: str) -> ActivityMimeAttachment:
        email = self.message(message_id)
        pk = ids.attachment_pk(attachment_id)
        found = next((a for a in email.attachments.all() if a.pk == pk), None)
        if found is None:
            raise GraphError(
                "The specified object was not found in the store.",
                code="ErrorItemNotFound",
                status=404,
            )
        return found

    @_graph_schema(
        "One attachment, with contentBytes",
        operation_id="graph_attachment_get",
        parameters=[MESSAGE_ID],
    )
    def get(self, request: Request, message_id: str, attachment_id: str) -> Response:
        attachment = self.attachment(message_id, attachment_id)
        return Response(attachment_resource(attachment, with_content=True))

    @_graph_schema(
        "Remove an attachment from a draft",
        operation_id="graph_attachment_delete",
        parameters=[MESSAGE_ID],
        responses={204: None},
    )
    def delete(self, request: Request, message_id: str, attachment_id: str) -> Response:
        attachment_delete(
            attachment=self.attachment(message_id, attachment_id), actor=signed_in_user(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class AttachmentValueView(AttachmentView):
    http_method_names = ["get", "head", "options"]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)

    @_graph_schema(
        "The raw bytes of an attachment ($value)",
        operation_id="graph_attachment_value",
        parameters=[MESSAGE_ID],
        responses={(200, "*/*"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request: Request, message_id: str, attachment_id: str) -> Any:
        try:
            return attachment_response(self.attachment(message_id, attachment_id))
        except ContentMissing as exc:
            raise GraphError(str(exc), code="ErrorItemNotFound", status=404) from exc


# --- the same, under other paths (their own operation ids in the schema) -----------------

FOLDER = OpenApiParameter(
    "folder",
    str,
    OpenApiParameter.PATH,
    description="drafts, sentitems, inbox, archive, deleteditems",
)


class UserSendMailView(SendMailView):
    @_graph_schema(
        "Send a message as a user or a queue (sendMail)",
        operation_id="graph_user_send_mail",
        parameters=[
            OpenApiParameter(
                "user", str, OpenApiParameter.PATH, description="an id, username or address"
            )
        ],
        request={"application/json": GRAPH_JSON},
        responses={202: None},
    )
    def post(self, request: Request, user: str | None = None) -> Response:
        return super().post(request, user)


class FolderMessagesView(MessagesView):
    @_graph_schema(
        "List the messages of a folder",
        operation_id="graph_folder_messages_list",
        parameters=[FOLDER],
    )
    def get(self, request: Request, folder: str | None = None) -> Response:
        return super().get(request, folder)

    @_graph_schema(
        "Create a draft in the drafts folder",
        operation_id="graph_folder_messages_create",
        parameters=[FOLDER],
        request={"application/json": GRAPH_JSON},
        responses={201: OpenApiResponse(GRAPH_JSON)},
    )
    def post(self, request: Request, folder: str | None = None) -> Response:
        return super().post(request, folder)


class FolderMessageView(MessageView):
    @_graph_schema(
        "One message of a folder",
        operation_id="graph_folder_message_get",
        parameters=[FOLDER, MESSAGE_ID],
    )
    def get(self, request: Request, message_id: str, folder: str | None = None) -> Response:
        return super().get(request, message_id, folder)

    @_graph_schema(
        "Update a draft of a folder",
        operation_id="graph_folder_message_update",
        parameters=[FOLDER, MESSAGE_ID],
        request={"application/json": GRAPH_JSON},
    )
    def patch(self, request: Request, message_id: str, folder: str | None = None) -> Response:
        return super().patch(request, message_id, folder)

    @_graph_schema(
        "Delete a message of a folder",
        operation_id="graph_folder_message_delete",
        parameters=[FOLDER, MESSAGE_ID],
        responses={204: None},
    )
    def delete(self, request: Request, message_id: str, folder: str | None = None) -> Response:
        return super().delete(request, message_id, folder)
