"""``POST Agents/EMail/SendEMails``: SuperOffice's EMail agent over our services.

Thin: the body is read into service arguments (``entities``), the batch is one call
of ``emails_send_batch`` (one transaction, each email on its own), and the answer is
the e-mail entities filled from our records. Errors of the whole request go through
our one exception handler into SuperOffice's shape (``compat.base``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from activities.models import Email
from activities.selectors import email_list_queryset
from activities.services.batch import emails_send_batch
from common.api.idempotency import idempotent
from common.api.parsers import JSONParser
from common.api.schema import IDEMPOTENCY_KEY
from common.errors import ApplicationError
from compat.base import VendorAPIView
from crm.api import signed_in_user

from .carriers import SendEMailsIn, validated
from .connection import check_connection
from .entities import (
    SuperOfficeInputError,
    apply_select,
    entity_of,
    error_shape,
    input_error,
    parse_select,
    read_entity,
    refused_entity,
)
from .xml import (
    SuperOfficeTextXMLParser,
    SuperOfficeTextXMLRenderer,
    SuperOfficeXMLParser,
    SuperOfficeXMLRenderer,
)

TAG = "SuperOffice EMail agent"


class TextJSONParser(JSONParser):
    """``text/json``, which SuperOffice's agents also take."""

    media_type = "text/json"


class SuperOfficeErrorSerializer(serializers.Serializer):
    Error = serializers.CharField(help_text="the HTTP status's reason")
    ErrorType = serializers.CharField(help_text="our stable code, e.g. invalid_address")
    Message = serializers.CharField(help_text="what went wrong, naming the e-mail and property")


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(SuperOfficeErrorSerializer, description=description)


SELECT = OpenApiParameter(
    "$select",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    required=False,
    description="comma-separated EMailEntity properties to fill (To/Address for a part of "
    "one); the others are null",
)


class SendEMailsView(VendorAPIView):
    error_shape = staticmethod(error_shape)
    parser_classes = [JSONParser, TextJSONParser, SuperOfficeXMLParser, SuperOfficeTextXMLParser]
    renderer_classes = [JSONRenderer, SuperOfficeXMLRenderer, SuperOfficeTextXMLRenderer]

    @extend_schema(
        tags=[TAG],
        summary="Send the provided e-mails (SuperOffice EMail agent SendEMails)",
        description=(
            "Each EMailEntity becomes one of our emails, created and sent as the caller (or "
            "as From, where the caller may send as it), all in one transaction: a refused "
            "e-mail is not written, the others are. The answer lists every e-mail in the "
            "order given: sent ones with IsSent true, ServerId and MessageID; refused ones "
            "with IsSent false and SendError saying why. If none could be sent, the answer "
            "is the refusal itself (4xx). A connection info must be null or name this "
            "server's own delivery. See docs/compat/superoffice.md."
        ),
        parameters=[SELECT, IDEMPOTENCY_KEY],
        request={"application/json": SendEMailsIn},
        responses={
            200: OpenApiResponse(
                {"type": "array", "items": {"type": "object", "additionalProperties": True}},
                description="the e-mails, as EMailEntity, in the order given",
            ),
            400: _error(
                "invalid input, a connection info naming another server, or no "
                "e-mail could be sent (each refusal named)"
            ),
            401: _error("no token, or an invalid one (Token or Bearer)"),
            403: _error("the caller may not send as From"),
            406: _error("the Accept header asks for a type we do not answer"),
            413: _error("an attachment over the organisation's limit"),
            415: _error("a body that is neither JSON nor XML"),
            422: _error("this Idempotency-Key was already used for a different request"),
            429: _error("too many requests (throttled)"),
        },
    )
    @idempotent
    def post(self, request: Request) -> Response:
        actor = signed_in_user(request)
        selected = parse_select(request.query_params.get("$select"))
        try:
            body = validated(request.data, SendEMailsIn, label="request")
        except serializers.ValidationError as exc:
            raise input_error(exc) from exc
        check_connection(body.get("OutgoingConnectionInfo"), label="OutgoingConnectionInfo")
        check_connection(body.get("SentItemsConnectionInfo"), label="SentItemsConnectionInfo")
        entities: list[Any] = body["Emails"]

        # Each entity read on its own: one that cannot be read is refused, not the batch.
        read: list[dict[str, Any] | ApplicationError] = []
        for index, data in enumerate(entities):
            try:
                read.append(read_entity(data, index=index, actor=actor))
            except serializers.ValidationError as exc:
                read.append(input_error(exc))
            except ApplicationError as exc:
                read.append(exc)
        outcomes = iter(
            emails_send_batch(actor=actor, emails=[r for r in read if isinstance(r, dict)])
        )
        results: list[Email | ApplicationError] = []
        for item in read:
            if isinstance(item, ApplicationError):
                results.append(item)
                continue
            outcome = next(outcomes)
            result = outcome.email or outcome.error
            assert result is not None  # a batch outcome is an email or its refusal
            results.append(result)

        refusals = [(i, r) for i, r in enumerate(results) if isinstance(r, ApplicationError)]
        if entities and len(refusals) == len(entities):
            raise _all_refused(refusals)
        sent = email_list_queryset(
            Email.objects.filter(pk__in=[r.pk for r in results if isinstance(r, Email)])
        ).in_bulk()
        answer = []
        for index, result in enumerate(results):
            if isinstance(result, ApplicationError):
                entity = refused_entity(
                    entities[index], _named(index, result), status=result.http_status
                )
            else:
                entity = entity_of(sent[result.pk], actor=actor)
            answer.append(apply_select(entity, selected))
        return Response(answer, status=status.HTTP_200_OK)


@extend_schema(exclude=True)
class UnknownMethodView(VendorAPIView):
    """Any other path under ``Agents/EMail/``: a 404 in SuperOffice's shape that says
    which method is offered."""

    error_shape = staticmethod(error_shape)
    renderer_classes = [JSONRenderer]
    permission_classes = [AllowAny]  # a 404 tells nothing a caller may not know

    def handle(self, request: Request, method: str = "") -> Response:
        raise NotFound(f"the EMail agent here offers SendEMails only, not {method[:100]!r}")

    get = post = put = patch = delete = handle


def _named(index: int, error: ApplicationError) -> ApplicationError:
    """The refusal with the e-mail it is about at the front of its message."""
    prefix = f"Emails[{index}]"
    if error.message.startswith(prefix):
        return error
    named = ApplicationError(f"{prefix}: {error.message}", code=error.code)
    named.http_status = error.http_status
    return named


def _all_refused(refusals: list[tuple[int, ApplicationError]]) -> ApplicationError:
    statuses = {error.http_status for _, error in refusals}
    codes = {error.code for _, error in refusals}
    message = "no e-mail was sent: " + "; ".join(
        _named(index, error).message for index, error in refusals
    )
    error = SuperOfficeInputError(message, code=codes.pop() if len(codes) == 1 else "invalid")
    error.http_status = statuses.pop() if len(statuses) == 1 else status.HTTP_400_BAD_REQUEST
    return error
