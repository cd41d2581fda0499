"""Done when: Microsoft's own Python SDK (msgraph-sdk) sends through /graph/v1.0/ over
real HTTP, and the mail, with its attachment byte for byte, reaches a real SMTP server;
and Microsoft's documented sendMail sample, sent raw, arrives too or is refused in
Graph's words."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import requests
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.internet_message_header import InternetMessageHeader
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import (
    SendMailPostRequestBody,
)
from rest_framework.authtoken.models import Token

from activities.models import Email, EmailStatus

from .graph_support import DOCS_PLACEHOLDER_RECIPIENT, DOCS_SEND_MAIL, sample

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """The SDK's coroutine to its end on a loop of its own thread: an earlier test in
    the same process (Playwright's sync API, the browser tests) may leave this thread
    inside a running loop, where ``asyncio.run`` refuses."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


# Bytes of every value, so that any re-encoding on the way would show.
ATTACHMENT = bytes(range(256)) * 40


class StaticToken(AccessTokenProvider):
    """Our API token as the bearer token. kiota's Azure provider insists on https; this
    one does not, and allows any host (the live server is http://localhost)."""

    def __init__(self, token: str):
        self.token = token

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([])


def _client(base_url: str, token: str) -> GraphServiceClient:
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticToken(token)))
    adapter.base_url = base_url
    return GraphServiceClient(request_adapter=adapter)


def _message(to: Recipient) -> Message:
    return Message(
        subject="Quarterly figures",
        body=ItemBody(content_type=BodyType.Html, content="<p>Attached.</p>"),
        to_recipients=[to],
        attachments=[
            FileAttachment(
                name="figures.bin",
                content_type="application/octet-stream",
                content_bytes=ATTACHMENT,
            )
        ],
    )


def test_the_graph_sdk_sends_mail_with_an_attachment_that_arrives_byte_identical(
    live_server, smtp_settings, eager_celery, owner
):
    token = Token.objects.create(user=owner).key
    client = _client(f"{live_server.url}/graph/v1.0", token)
    to = Recipient(email_address=EmailAddress(address="ann@example.com", name="Ann Lee"))

    message = _message(to)
    message.reply_to = [Recipient(email_address=EmailAddress(address="sales@example.com"))]
    message.internet_message_headers = [InternetMessageHeader(name="X-CRM-Case", value="42")]
    message.is_read_receipt_requested = True

    run(client.me.send_mail.post(SendMailPostRequestBody(message=message)))

    [received] = smtp_settings.messages
    assert received.rcpt_tos == ["ann@example.com"]
    arrived = received.message
    assert arrived["To"] == "Ann Lee <ann@example.com>"
    assert arrived["From"] == "Alice Archer <alice@staff.example.com>"
    assert arrived["Subject"].startswith("Quarterly figures")
    assert arrived["Reply-To"] == "sales@example.com"
    assert arrived["X-CRM-Case"] == "42"
    assert arrived["Disposition-Notification-To"] == "alice@staff.example.com"
    [part] = [p for p in arrived.iter_attachments()]
    assert part.get_filename() == "figures.bin"
    assert part.get_payload(decode=True) == ATTACHMENT
    email = Email.objects.get()
    assert email.status == EmailStatus.SENT
    assert email.attachments.get().blob.size == len(ATTACHMENT)


def test_the_graph_sdk_gets_a_refusal_in_graphs_words(
    live_server, smtp_settings, eager_celery, owner
):
    token = Token.objects.create(user=owner).key
    client = _client(f"{live_server.url}/graph/v1.0", token)

    with pytest.raises(ODataError) as refused:
        run(client.me.send_mail.post(SendMailPostRequestBody(message=_message(Recipient()))))

    assert refused.value.response_status_code == 400
    assert refused.value.error.code == "ErrorInvalidRecipients"
    assert "toRecipients[0]" in refused.value.error.message
    assert not Email.objects.exists() and smtp_settings.messages == []


def test_the_documented_sample_over_raw_http_arrives_at_the_smtp_server(
    live_server, smtp_settings, eager_celery, owner
):
    token = Token.objects.create(user=owner).key

    response = requests.post(
        f"{live_server.url}/graph/v1.0/me/sendMail",
        json=sample(DOCS_SEND_MAIL),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )

    assert response.status_code == 202 and response.content == b""
    [received] = smtp_settings.messages
    assert sorted(received.rcpt_tos) == ["danas@contoso.com", "frannis@contoso.com"]
    assert received.message.get_content().strip() == "The new cafeteria is open."


def test_the_documented_sample_with_its_placeholder_recipient_is_refused_naming_it(
    live_server, smtp_settings, eager_celery, owner
):
    token = Token.objects.create(user=owner).key
    body = sample(DOCS_SEND_MAIL)
    body["message"]["toRecipients"].append(DOCS_PLACEHOLDER_RECIPIENT)

    response = requests.post(
        f"{live_server.url}/graph/v1.0/me/sendMail",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "ErrorInvalidRecipients"
    assert "toRecipients[1] has no emailAddress.address" in error["message"]
    assert not Email.objects.exists() and smtp_settings.messages == []


def test_the_graph_sdk_creates_lists_reads_and_sends_a_draft(
    live_server, smtp_settings, eager_celery, owner
):
    token = Token.objects.create(user=owner).key
    client = _client(f"{live_server.url}/graph/v1.0", token)
    to = Recipient(email_address=EmailAddress(address="ann@example.com"))

    async def steps():
        draft = await client.me.messages.post(_message(to))
        listed = await client.me.messages.get()
        attachments = await client.me.messages.by_message_id(draft.id).attachments.get()
        await client.me.messages.by_message_id(draft.id).send.post()
        sent = await client.me.messages.by_message_id(draft.id).get()
        return draft, listed, attachments, sent

    draft, listed, attachments, sent = run(steps())

    assert draft.is_draft is True and draft.subject == "Quarterly figures"
    assert draft.from_.email_address.address == "alice@staff.example.com"
    assert draft.created_date_time is not None
    assert [m.id for m in listed.value] == [draft.id]
    assert [a.name for a in attachments.value] == ["figures.bin"]
    assert sent.is_draft is False and sent.internet_message_id
    [received] = smtp_settings.messages
    assert received.message["Message-ID"] == sent.internet_message_id
