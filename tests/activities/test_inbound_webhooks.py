"""Providers' inbound webhooks (Mailgun, Postmark, SparkPost) through anymail's views,
posted over HTTP to the live server in each provider's documented payload shape: the
secret required, each message stored once, every bad payload answered in words."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage

import pytest

from activities.inbound_webhooks import urlpatterns
from activities.models import AttachmentBlob, Email, InboundMessage

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "hooks:s3cret-for-tests"
SIGNING_KEY = "mailgun-signing-key-for-tests"


@pytest.fixture
def configured(settings, org, team_queue):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    return settings


def raw_message(message_id: str = "<hook-1@customers.example.org>") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann Lee <ann@customers.example.org>"
    msg["To"] = "Support <support@example.com>"
    msg["Subject"] = "Two more seats"
    msg["Message-ID"] = message_id
    msg.set_content("Hello from a provider")
    msg.add_attachment(b"%PDF offer", maintype="application", subtype="pdf", filename="o.pdf")
    return msg.as_bytes()


def post(url: str, body: bytes, content_type: str, auth: str | None = SECRET):
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", content_type)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def mailgun(raw: bytes) -> tuple[bytes, str]:
    """A route's forward() of the raw MIME (``.../mailgun/inbound_mime/``), signed."""
    timestamp, token = str(int(time.time())), "a" * 50
    signature = hmac.new(
        SIGNING_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    fields = {
        "body-mime": raw.decode(),
        "recipient": "support@example.com",
        "sender": "ann@customers.example.org",
        "timestamp": timestamp,
        "token": token,
        "signature": signature,
    }
    return urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded"


def postmark(raw: bytes) -> tuple[bytes, str]:
    """Postmark's inbound JSON, parsed fields (no RawEmail), as its docs show it."""
    payload = {
        "FromName": "Ann Lee",
        "MessageStream": "inbound",
        "From": "ann@customers.example.org",
        "FromFull": {"Email": "ann@customers.example.org", "Name": "Ann Lee"},
        "To": "support@example.com",
        "ToFull": [{"Email": "support@example.com", "Name": "Support", "MailboxHash": ""}],
        "CcFull": [],
        "OriginalRecipient": "support@example.com",
        "Subject": "Two more seats",
        "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019b",
        "Date": "Thu, 3 Dec 2026 10:00:00 +0000",
        "TextBody": "Hello from a provider",
        "HtmlBody": "<p>Hello from a provider</p>",
        "StrippedTextReply": "",
        "Headers": [
            {"Name": "Return-Path", "Value": "<ann@customers.example.org>"},
            {"Name": "Message-ID", "Value": "<hook-1@customers.example.org>"},
        ],
        "Attachments": [
            {
                "Name": "o.pdf",
                "Content": base64.b64encode(b"%PDF offer").decode(),
                "ContentType": "application/pdf",
                "ContentLength": 10,
            }
        ],
    }
    return json.dumps(payload).encode(), "application/json"


def sparkpost(raw: bytes) -> tuple[bytes, str]:
    """A SparkPost inbound relay batch of one ``relay_message``."""
    payload = [
        {
            "msys": {
                "relay_message": {
                    "content": {
                        "email_rfc822": base64.b64encode(raw).decode(),
                        "email_rfc822_is_base64": True,
                        "headers": [],
                        "html": "",
                        "subject": "Two more seats",
                        "text": "Hello from a provider",
                        "to": ["support@example.com"],
                    },
                    "customer_id": "1337",
                    "friendly_from": "ann@customers.example.org",
                    "msg_from": "ann@customers.example.org",
                    "rcpt_to": "support@example.com",
                    "webhook_id": "4839201967643219",
                    "protocol": "smtp",
                }
            }
        }
    ]
    return json.dumps(payload).encode(), "application/json"


PROVIDERS = {
    "mailgun/inbound_mime": mailgun,
    "postmark/inbound": postmark,
    "sparkpost/inbound": sparkpost,
}


@pytest.mark.parametrize("route", list(PROVIDERS))
def test_a_message_posted_by_the_provider_is_stored_once(
    configured, live_server, team_queue, route
):
    body, content_type = PROVIDERS[route](raw_message())
    url = f"{live_server.url}/anymail/{route}/"
    assert post(url, body, content_type)[0] == 200
    email = Email.objects.get()
    assert (email.from_address, email.subject) == ("ann@customers.example.org", "Two more seats")
    assert email.message_id == "<hook-1@customers.example.org>"
    assert "Hello from a provider" in email.body_text
    assert email.parties.get(role="to").queue == team_queue
    assert list(email.attachments.values_list("filename", "blob__size")) == [("o.pdf", 10)]
    # The provider retries (or the same mail comes by two routes): nothing is added.
    assert post(url, body, content_type)[0] == 200
    assert Email.objects.count() == 1
    assert AttachmentBlob.objects.filter(attachments__isnull=False).count() == 1
    kept = InboundMessage.objects.get()  # the raw kept once, beside the email
    assert (kept.status, kept.email, kept.route) == (
        "stored",
        email,
        f"webhook:{route.split('/')[0]}",
    )


@pytest.mark.parametrize("route", list(PROVIDERS))
@pytest.mark.parametrize("auth", [None, "hooks:wrong"])
def test_without_the_secret_it_is_a_401_and_writes_nothing(configured, live_server, route, auth):
    body, content_type = PROVIDERS[route](raw_message())
    status, answer = post(f"{live_server.url}/anymail/{route}/", body, content_type, auth=auth)
    assert status == 401
    assert json.loads(answer)["code"] == "webhook_unauthorized"
    assert not Email.objects.exists()


def test_a_mailgun_post_with_a_wrong_signature_is_a_401(configured, live_server):
    body, content_type = mailgun(raw_message())
    body = body.replace(b"signature=", b"signature=0")
    status, _ = post(f"{live_server.url}/anymail/mailgun/inbound_mime/", body, content_type)
    assert status == 401 and not Email.objects.exists()


def test_until_the_secret_is_configured_the_webhooks_are_off_in_words(settings, org, live_server):
    settings.ANYMAIL = {}
    body, content_type = postmark(raw_message())
    status, answer = post(f"{live_server.url}/anymail/postmark/inbound/", body, content_type)
    assert status == 503
    assert json.loads(answer)["detail"] == (
        "inbound Postmark webhooks are off until ANYMAIL_WEBHOOK_SECRET is set"
    )
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    status, answer = post(f"{live_server.url}/anymail/mailgun/inbound/", b"", content_type)
    assert status == 503 and b"ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY" in answer
    assert not Email.objects.exists()


@pytest.mark.parametrize(
    ("route", "body", "content_type"),
    [
        ("postmark/inbound", b"{not json", "application/json"),
        ("postmark/inbound", b'{"RecordType": "Bounce"}', "application/json"),
        ("sparkpost/inbound", b'[{"msys": {"relay_message": {}}}]', "application/json"),
        ("sparkpost/inbound", b"[[[[" * 2000, "application/json"),
    ],
)
def test_a_payload_that_is_not_the_providers_inbound_shape_is_a_400(
    configured, live_server, route, body, content_type
):
    status, answer = post(f"{live_server.url}/anymail/{route}/", body, content_type)
    assert status == 400, answer
    assert json.loads(answer)["code"] == "invalid_webhook_payload"
    assert not Email.objects.exists()


def test_a_message_without_a_sender_is_a_400_naming_it(configured, live_server):
    raw = raw_message().replace(b"From: Ann Lee <ann@customers.example.org>\n", b"")
    body, content_type = sparkpost(raw)
    status, answer = post(f"{live_server.url}/anymail/sparkpost/inbound/", body, content_type)
    assert status == 400
    assert json.loads(answer)["code"] == "no_sender"
    assert not Email.objects.exists()


def mailgun_multipart(raw: bytes) -> tuple[bytes, str]:
    """A route's forward() posted as ``multipart/form-data`` (as Mailgun does), signed."""
    urlencoded, _ = mailgun(raw)
    fields = urllib.parse.parse_qs(urlencoded.decode(), keep_blank_values=True)
    boundary = "mailgun-form-boundary-0123456789"
    body = b"".join(
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (boundary.encode(), name.encode(), values[0].encode())
        for name, values in fields.items()
    )
    body += b"--%s--\r\n" % boundary.encode()
    return body, f"multipart/form-data; boundary={boundary}"


def big_message(size: int, message_id: str = "<big@customers.example.org>") -> bytes:
    msg = EmailMessage()
    msg["From"] = "ann@customers.example.org"
    msg["To"] = "support@example.com"
    msg["Subject"] = "The scans"
    msg["Message-ID"] = message_id
    msg.set_content("Attached")
    msg.add_attachment(
        b"%PDF-1.4 " + b"s" * size, maintype="application", subtype="pdf", filename="scan.pdf"
    )
    return msg.as_bytes()


@pytest.mark.parametrize(
    ("route", "encode"),
    [
        ("mailgun/inbound_mime", mailgun),
        ("mailgun/inbound_mime", mailgun_multipart),
        ("sparkpost/inbound", sparkpost),
    ],
)
def test_a_message_larger_than_djangos_5_mb_form_limit_is_stored(
    configured, live_server, team_queue, route, encode
):
    raw = big_message(6 * 1024 * 1024)
    body, content_type = encode(raw)
    assert len(body) > configured.DATA_UPLOAD_MAX_MEMORY_SIZE
    status, answer = post(f"{live_server.url}/anymail/{route}/", body, content_type)
    assert status == 200, answer[:300]
    email = Email.objects.get()
    assert email.attachments.get().blob.size == 6 * 1024 * 1024 + 9
    assert InboundMessage.objects.get().envelope_recipients == ["support@example.com"]


def test_a_body_over_the_webhook_limit_is_a_413_naming_it_and_keeps_nothing(
    configured, live_server
):
    configured.CRM_INBOUND_MAX_BYTES = 100_000  # a body limit of 133,336 + 1 MiB
    body, content_type = sparkpost(big_message(1024 * 1024))
    status, answer = post(f"{live_server.url}/anymail/sparkpost/inbound/", body, content_type)
    assert status == 413
    detail = json.loads(answer)
    assert detail["code"] == "message_too_large"
    assert "CRM_INBOUND_MAX_BYTES = 100,000 bytes" in detail["detail"]
    assert not InboundMessage.objects.exists() and not AttachmentBlob.objects.exists()


def test_a_message_over_the_message_limit_within_the_body_limit_is_a_400_naming_it(
    configured, live_server
):
    configured.CRM_INBOUND_MAX_BYTES = 300_000
    body, content_type = mailgun(big_message(400_000))
    status, answer = post(f"{live_server.url}/anymail/mailgun/inbound_mime/", body, content_type)
    assert status == 400
    assert json.loads(answer)["code"] == "message_too_large"
    assert not InboundMessage.objects.exists()


@pytest.mark.slow
def test_a_50_mb_message_is_refused_by_size_in_words(configured, live_server):
    body, content_type = sparkpost(big_message(50 * 1024 * 1024))
    status, answer = post(f"{live_server.url}/anymail/sparkpost/inbound/", body, content_type)
    assert status == 413
    assert "CRM_INBOUND_MAX_BYTES = 41,943,040 bytes" in json.loads(answer)["detail"]
    assert not InboundMessage.objects.exists() and not AttachmentBlob.objects.exists()


class _CountingStream:
    """A request body that counts what the view reads of it."""

    def __init__(self, size: int):
        self.left, self.read_bytes = size, 0

    def read(self, size: int = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        self.left -= size
        self.read_bytes += size
        return b"x" * size


@pytest.mark.parametrize("auth", [None, "hooks:wrong"])
def test_a_request_without_the_credentials_is_refused_before_its_body_is_read(configured, rf, auth):
    view = next(p for p in urlpatterns if p.name == "postmark_inbound_webhook").callback
    size = 40 * 1024 * 1024
    headers = (
        {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    )
    request = rf.post("/anymail/postmark/inbound/", b"", content_type="application/json", **headers)
    request.META["CONTENT_LENGTH"] = str(size)
    request._stream = stream = _CountingStream(size)
    response = view(request)
    assert response.status_code == 401
    assert json.loads(response.content)["code"] == "webhook_unauthorized"
    assert stream.read_bytes == 0
    assert not InboundMessage.objects.exists()
