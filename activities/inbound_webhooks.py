"""Inbound mail from providers' webhooks, through django-anymail's own views and its
``inbound`` signal: Mailgun (a route's ``forward()``), Postmark and SparkPost (inbound
relay). Each posted message goes to ``inbound_message_store`` as its MIME bytes.

The webhook secret is required: until ``ANYMAIL_WEBHOOK_SECRET`` ("user:password", the
basic auth the provider's webhook URL carries) is set, and for Mailgun its signing key,
the endpoints answer 503 naming the missing setting (a provider retries, so nothing is
lost meanwhile); a request without the right credentials is a 401 and writes nothing.
Whatever a payload makes go wrong is an answer that names it, never a 500: 400 for a
payload that is not the provider's inbound shape or a message refused with a reason,
503 for a failure that may pass (the database away), so the provider tries again.

The ``inbound`` receiver is connected here, by the module that routes the webhooks: the
signal fires only from these views.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from anymail.exceptions import (
    AnymailConfigurationError,
    AnymailError,
    AnymailWebhookValidationFailure,
)
from anymail.signals import AnymailInboundEvent, inbound
from anymail.utils import get_anymail_setting
from anymail.webhooks.mailgun import MailgunInboundWebhookView
from anymail.webhooks.postmark import PostmarkInboundWebhookView
from anymail.webhooks.sparkpost import SparkPostInboundWebhookView
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.urls import path, re_path
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from .errors import ApplicationError
from .services.inbound import inbound_message_store_or_hold

logger = logging.getLogger(__name__)


def store_inbound(sender: Any, event: AnymailInboundEvent, esp_name: str, **kwargs: Any) -> None:
    """anymail's ``inbound`` signal: the message, as MIME bytes, to the one service
    (a message kept but refused is a 400 naming the reason)."""
    message = inbound_message_store_or_hold(
        raw=event.message.as_bytes(), route=f"webhook:{esp_name.lower()}"
    )
    logger.info("inbound %s webhook message: %s", esp_name, message)


inbound.connect(store_inbound, dispatch_uid="activities.inbound_webhooks.store_inbound")


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status)


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


def secured(provider: str, view_class: type[View]) -> Callable[[HttpRequest], HttpResponseBase]:
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
                f"inbound {provider} webhooks are off until {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} set",
            )
        try:
            return view(request, *args, **kwargs)
        except AnymailWebhookValidationFailure as exc:
            response = _error(401, "webhook_unauthorized", str(exc))
            response["WWW-Authenticate"] = 'Basic realm="webhooks"'
            return response
        except ApplicationError as exc:  # the message refused, with the reason
            return _error(exc.http_status, exc.code, str(exc))
        except DatabaseError:
            logger.exception("could not store an inbound %s webhook message", provider)
            return _error(503, "try_again", "the message could not be stored now; try again")
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
                f"not a {provider} inbound webhook payload: {type(exc).__name__}: {exc}"[:500],
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
]
