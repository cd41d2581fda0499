"""Shared by the Graph adapter's tests: a client as Graph SDKs send (``Bearer``), and
Microsoft's documented sample bodies (learn.microsoft.com, user-sendmail)."""

from __future__ import annotations

import copy
from typing import Any

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

BASE = "/graph/v1.0"

# "Example 1: Send a new email using JSON format", as documented (saveToSentItems a string).
DOCS_SEND_MAIL: dict[str, Any] = {
    "message": {
        "subject": "Meet for lunch?",
        "body": {"contentType": "Text", "content": "The new cafeteria is open."},
        "toRecipients": [{"emailAddress": {"address": "frannis@contoso.com"}}],
        "ccRecipients": [{"emailAddress": {"address": "danas@contoso.com"}}],
    },
    "saveToSentItems": "false",
}

# "Example 3: Create a message with a file attachment and send the message".
DOCS_SEND_MAIL_WITH_ATTACHMENT: dict[str, Any] = {
    "message": {
        "subject": "Meet for lunch?",
        "body": {"contentType": "Text", "content": "The new cafeteria is open."},
        "toRecipients": [{"emailAddress": {"address": "meganb@contoso.com"}}],
        "attachments": [
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": "attachment.txt",
                "contentType": "text/plain",
                "contentBytes": "SGVsbG8gV29ybGQh",
            }
        ],
    }
}

# The recipient of the message resource's documented JSON representation: no address.
DOCS_PLACEHOLDER_RECIPIENT: dict[str, Any] = {"@odata.type": "microsoft.graph.recipient"}


def sample(body: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(body)


def graph_client(user=None) -> APIClient:
    """A client sending ``Authorization: Bearer <key>`` for ``user`` (anonymous if None)."""
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.key}")
    return client


def graph_error(response) -> tuple[int, str, str]:
    """(status, Graph code, message) of an error answer, checking Graph's shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "innerError"}, error
    assert "request-id" in error["innerError"] and "date" in error["innerError"]
    return response.status_code, error["code"], error["message"]
