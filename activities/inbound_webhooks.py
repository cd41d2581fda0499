"""Providers' webhooks, through django-anymail's own views, at anymail's paths under
``anymail/``: inbound mail (its ``inbound`` signal) from Mailgun (a route's
``forward()``), Postmark and SparkPost (inbound relay), each message to
``inbound_message_store`` as its MIME bytes; and delivery tracking (its ``tracking``
signal: delivered, bounced, complained, opened, ...) from the same three, each event to
``delivery_event_record``. The receivers are ``activities.receivers``.

The webhook secret is required: until ``ANYMAIL_WEBHOOK_SECRET`` ("user:password", the
basic auth the provider's webhook URL carries) is set, and for Mailgun its signing key,
the endpoints answer 503 naming the missing setting (a provider retries, so nothing is
lost meanwhile); a request without the right credentials is a 401 and writes nothing:
its body is not read (the basic auth is checked before the body, not by anymail after).
Whatever a payload makes go wrong is an answer that names it, never a 500: 400 for a
payload that is not the provider's inbound shape or a message refused with a reason,
503 for a failure that may pass (the database away), so the provider tries again.

Bodies: a provider posts the whole message, encoded (base64 in JSON, in a form field),
so these views take a body of up to ``webhook_body_limit()`` (the message limit
``CRM_INBOUND_MAX_BYTES`` as base64, plus 1 MiB of fields), not Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` (5 MB), which would refuse most large mail a provider
then retries until it drops it. A body over it is a 413 naming the limit. The body is
read here, once, and a multipart form is parsed by the standard library's MIME parser
(Django's would apply its 5 MB to the message field again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from typing import Any

from anymail.exceptions import (
    AnymailConfigurationError,
    AnymailError,
    AnymailWebhookValidationFailure,
)
from anymail.utils import get_anymail_setting
from anymail.webhooks.base import AnymailBasicAuthMixin
from anymail.webhooks.mailgun import MailgunInboundWebhookView, MailgunTrackingWebhookView
from anymail.webhooks.postmark import PostmarkInboundWebhookView, PostmarkTrackingWebhookView
from anymail.webhooks.sparkpost import (
    SparkPostInboundWebhookView,
    SparkPostTrackingWebhookView,
)
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponseBase, JsonResponse, QueryDict
from django.urls import path, re_path
from django.utils.datastructures import MultiValueDict
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import conf
from .errors import ApplicationError
from .uploads import base64_size, content_length

logger = logging.getLogger(__name__)


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status)


FIELDS_OVERHEAD = 1024 * 1024
READ_CHUNK = 256 * 1024


def webhook_body_limit() -> int:
    """The largest body an inbound webhook takes: a message of ``CRM_INBOUND_MAX_BYTES``
    as base64, plus the provider's other fields."""
    return base64_size(conf.inbound_max_bytes()) + FIELDS_OVERHEAD


def _too_large(request: HttpRequest, limit: int, size: int) -> JsonResponse:
    # Read what was sent (up to a bound) before answering, so the sender's client,
    # still writing, reads the answer rather than a reset connection.
    left = min(size, 4 * limit)
    while left > 0 and (chunk := request.read(min(READ_CHUNK, left))):
        left -= len(chunk)
    return _error(
        413,
        "message_too_large",
        f"the request body is {size:,} bytes, over the {limit:,} bytes an inbound webhook "
        f"takes (a message of at most CRM_INBOUND_MAX_BYTES = {conf.inbound_max_bytes():,} "
        "bytes, encoded)",
    )


def _form_of(
    content_type: str, body: bytes
) -> tuple[QueryDict, MultiValueDict[str, SimpleUploadedFile]]:
    """A ``multipart/form-data`` body's fields and files, by the standard library."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("the multipart/form-data body has no parts")
    fields = QueryDict(mutable=True)
    files: MultiValueDict[str, SimpleUploadedFile] = MultiValueDict()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        filename = part.get_filename()
        if filename:
            files.appendlist(name, SimpleUploadedFile(filename, data, part.get_content_type()))
        else:
            fields.appendlist(
                name, data.decode(part.get_content_charset() or "utf-8", errors="replace")
            )
    fields._mutable = False
    return fields, files


def _read_body(request: HttpRequest) -> JsonResponse | None:
    """Read the body within ``webhook_body_limit()`` (413 beyond it) and hand it to the
    request as if Django had read it; ``None`` when it is in place."""
    limit = webhook_body_limit()
    size = content_length(request)
    if size > limit:
        return _too_large(request, limit, size)
    body = request.read(limit + 1)
    if len(body) > limit:
        return _too_large(request, limit, len(body))
    # Django keeps a read body here (``HttpRequest.body``); set now, it is not limited
    # again by DATA_UPLOAD_MAX_MEMORY_SIZE.
    request._body = body
    if request.content_type == "multipart/form-data":
        request._post, request._files = _form_of(  # type: ignore[attr-defined]
            request.META.get("CONTENT_TYPE", ""), body
        )
    return None


def _missing_settings(provider: str) -> list[str]:
    missing = []
    if not get_anymail_setting("webhook_secret", default=None):
        missing.append("ANYMAIL_WEBHOOK_SECRET")
    if provider == "Mailgun" and not (
        get_anymail_setting("webhook_signing_key", esp_name="Mailgun", default=None)
        or get_anymail_setting("api_key", esp_name="Mailgun", default=None)
    ):
        missing.append("ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY")
    return missing


def secured(
    provider: str, view_class: type[View], kind: str = "inbound"
) -> Callable[[HttpRequest], HttpResponseBase]:
    """anymail's view, answered in words whatever goes wrong, and refused while the
    secret it needs is not configured."""
    view = view_class.as_view()

    @csrf_exempt
    def webhook(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        missing = _missing_settings(provider)
        if missing:
            return _error(
                503,
                "webhook_not_configured",
                f"{kind} {provider} webhooks are off until {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} set",
            )
        try:
            # The credentials first: a request without them reads no body at all.
            AnymailBasicAuthMixin.validate_request(view_class(), request)
            refused = _read_body(request)
            if refused is not None:
                return refused
            return view(request, *args, **kwargs)
        except AnymailWebhookValidationFailure as exc:
            response = _error(401, "webhook_unauthorized", str(exc))
            response["WWW-Authenticate"] = 'Basic realm="webhooks"'
            return response
        except ApplicationError as exc:  # the message refused, with the reason
            return _error(exc.http_status, exc.code, str(exc))
        except DatabaseError:
            logger.exception("could not store a %s %s webhook post", kind, provider)
            noun = "message" if kind == "inbound" else "event"
            return _error(503, "try_again", f"the {noun} could not be stored now; try again")
        except (
            AnymailConfigurationError,
            AnymailError,
            KeyError,
            ValueError,
            TypeError,
            RecursionError,  # JSON nested deeper than the decoder goes
        ) as exc:
            return _error(
                400,
                "invalid_webhook_payload",
                f"not a {provider} {kind} webhook payload: {type(exc).__name__}: {exc}"[:500],
            )

    return webhook


urlpatterns = [
    re_path(
        r"^mailgun/inbound(_mime)?/$",
        secured("Mailgun", MailgunInboundWebhookView),
        name="mailgun_inbound_webhook",
    ),
    path(
        "postmark/inbound/",
        secured("Postmark", PostmarkInboundWebhookView),
        name="postmark_inbound_webhook",
    ),
    path(
        "sparkpost/inbound/",
        secured("SparkPost", SparkPostInboundWebhookView),
        name="sparkpost_inbound_webhook",
    ),
    path(
        "mailgun/tracking/",
        secured("Mailgun", MailgunTrackingWebhookView, "tracking"),
        name="mailgun_tracking_webhook",
    ),
    path(
        "postmark/tracking/",
        secured("Postmark", PostmarkTrackingWebhookView, "tracking"),
        name="postmark_tracking_webhook",
    ),
    path(
        "sparkpost/tracking/",
        secured("SparkPost", SparkPostTrackingWebhookView, "tracking"),
        name="sparkpost_tracking_webhook",
    ),
]
