"""POST me/sendMail and users/{id | userPrincipalName}/sendMail."""

from __future__ import annotations

import json

import pytest

from activities.models import ActivityMimeAttachment, AttachmentBlob, Email, EmailStatus, Priority
from crm.models import EmailApproval
from tests.factories import QueueFactory, UserFactory

from .graph_support import (
    BASE,
    DOCS_PLACEHOLDER_RECIPIENT,
    DOCS_SEND_MAIL,
    DOCS_SEND_MAIL_WITH_ATTACHMENT,
    graph_client,
    graph_error,
    sample,
)

pytestmark = pytest.mark.django_db


def _post(client, body, path="me/sendMail", **kwargs):
    return client.post(f"{BASE}/{path}", body, format="json", **kwargs)


def test_the_documented_sample_is_accepted_and_queued_as_one_email(owner):
    response = _post(graph_client(owner), sample(DOCS_SEND_MAIL))

    assert response.status_code == 202
    assert response.content == b""
    email = Email.objects.get()
    assert email.status == EmailStatus.PENDING_SEND
    assert email.sender_user == owner and email.created_by == owner
    # The organisation's tracking token is appended, as for every send (DESIGN.md).
    assert (email.subject, email.body_text, email.body_html) == (
        f"Meet for lunch? CRM:{email.pk:07d}",
        "The new cafeteria is open.",
        "",
    )
    parties = {(p.role, p.address) for p in email.parties.all()}
    assert parties == {
        ("from", "alice@staff.example.com"),
        ("to", "frannis@contoso.com"),
        ("cc", "danas@contoso.com"),
    }
    assert [e.to_status for e in email.events.order_by("id")] == ["draft", "pending_send"]


def test_the_documented_sample_with_an_attachment_stores_it_in_the_blob_store(owner):
    response = _post(graph_client(owner), sample(DOCS_SEND_MAIL_WITH_ATTACHMENT))

    assert response.status_code == 202
    email = Email.objects.get()
    [attachment] = email.attachments.all()
    assert (attachment.filename, attachment.mime_type) == ("attachment.txt", "text/plain")
    assert attachment.blob.file.read() == b"Hello World!"
    assert email.status == EmailStatus.PENDING_SEND


def test_the_placeholder_recipient_of_the_docs_is_refused_naming_it_and_nothing_is_written(
    owner,
):
    body = sample(DOCS_SEND_MAIL_WITH_ATTACHMENT)
    body["message"]["ccRecipients"] = [DOCS_PLACEHOLDER_RECIPIENT]

    status, code, message = graph_error(_post(graph_client(owner), body))

    assert (status, code) == (400, "ErrorInvalidRecipients")
    assert "ccRecipients[0]" in message
    assert not Email.objects.exists()
    assert not ActivityMimeAttachment.objects.exists() and not AttachmentBlob.objects.exists()


def test_a_recipient_the_services_refuse_writes_nothing_not_even_the_attachment(owner):
    body = sample(DOCS_SEND_MAIL_WITH_ATTACHMENT)
    body["message"]["bccRecipients"] = [{"emailAddress": {"address": "not an address"}}]

    response = _post(graph_client(owner), body)

    status, code, message = graph_error(response)
    assert (status, code) == (400, "ErrorInvalidRecipients")
    assert "not an address" in message
    assert response.json()["error"]["innerError"]["code"] == "invalid_address"
    assert not Email.objects.exists() and not ActivityMimeAttachment.objects.exists()


def test_graph_beta_casing_is_accepted(owner):
    body = {
        "Message": {
            "Subject": "Beta",
            "Body": {"ContentType": "HTML", "Content": "<p>Hi</p>"},
            "ToRecipients": [{"EmailAddress": {"Address": "ann@example.com", "Name": "Ann"}}],
            "Importance": "High",
        },
        "SaveToSentItems": False,
    }

    assert _post(graph_client(owner), body).status_code == 202

    email = Email.objects.get()
    assert (email.body_html, email.priority) == ("<p>Hi</p>", Priority.HIGH)
    assert email.parties.get(role="to").name == "Ann"


def test_users_path_sends_as_a_queue_the_user_is_a_member_of(owner, team_queue):
    response = _post(
        graph_client(owner), sample(DOCS_SEND_MAIL), "users/support@example.com/sendMail"
    )

    assert response.status_code == 202
    email = Email.objects.get()
    assert email.sender_queue == team_queue and email.sender_user is None


@pytest.mark.parametrize("name", ["alice", "ALICE@staff.example.com", "pk"])
def test_users_path_names_a_user_by_id_username_or_address(owner, name):
    name = str(owner.pk) if name == "pk" else name
    assert (
        _post(graph_client(owner), sample(DOCS_SEND_MAIL), f"users/{name}/sendMail").status_code
        == 202
    )
    assert Email.objects.get().sender_user == owner


def test_sending_as_another_user_is_send_as_denied_and_writes_nothing(owner, teammate):
    response = _post(graph_client(teammate), sample(DOCS_SEND_MAIL), "users/alice/sendMail")

    status, code, message = graph_error(response)
    assert (status, code) == (403, "ErrorSendAsDenied")
    assert "bob may not send as the user alice" in message
    assert not Email.objects.exists()


def test_an_outsider_may_not_send_as_a_queue(outsider, team_queue):
    response = _post(
        graph_client(outsider), sample(DOCS_SEND_MAIL), "users/support@example.com/sendMail"
    )

    assert graph_error(response)[:2] == (403, "ErrorSendAsDenied")
    assert not Email.objects.exists()


def test_from_names_a_queue_to_send_as(owner, team_queue):
    body = sample(DOCS_SEND_MAIL)
    body["message"]["from"] = {"emailAddress": {"address": "SUPPORT@example.com"}}

    assert _post(graph_client(owner), body).status_code == 202
    assert Email.objects.get().sender_queue == team_queue


def test_from_an_address_no_one_has_is_send_as_denied(owner):
    body = sample(DOCS_SEND_MAIL)
    body["message"]["from"] = {"emailAddress": {"address": "ceo@elsewhere.example"}}

    assert graph_error(_post(graph_client(owner), body))[:2] == (403, "ErrorSendAsDenied")
    assert not Email.objects.exists()


def test_an_unknown_user_is_error_invalid_user(owner):
    response = _post(
        graph_client(owner), sample(DOCS_SEND_MAIL), "users/nobody@nowhere.example/sendMail"
    )

    status, code, message = graph_error(response)
    assert (status, code) == (404, "ErrorInvalidUser")
    assert "nobody@nowhere.example" in message


def test_an_unapproved_sender_address_is_refused_in_our_words(org):
    org.require_approval_for_user_email = True
    org.save()
    pending = UserFactory(username="pat", email_router_access_approval=EmailApproval.PENDING)

    response = _post(graph_client(pending), sample(DOCS_SEND_MAIL_WITH_ATTACHMENT))

    status, code, message = graph_error(response)
    assert (status, code) == (400, "ErrorSendAsDenied")
    assert "sender address is not approved" in message
    assert response.json()["error"]["innerError"]["code"] == "sender_not_approved"
    # Refused at send, after the attachment was stored: all of it rolled back.
    assert not Email.objects.exists()
    assert not ActivityMimeAttachment.objects.exists() and not AttachmentBlob.objects.exists()


def test_a_header_not_starting_with_x_is_refused_as_graph_does(owner):
    body = sample(DOCS_SEND_MAIL)
    body["message"]["internetMessageHeaders"] = [{"name": "Reply-To", "value": "a@example.com"}]

    status, code, message = graph_error(_post(graph_client(owner), body))

    assert (status, code) == (400, "InvalidInternetMessageHeader")
    assert message == "The internet message header name 'Reply-To' should start with 'x-' or 'X-'."
    assert not Email.objects.exists()


def test_an_inline_attachment_is_refused_naming_it(owner):
    body = sample(DOCS_SEND_MAIL_WITH_ATTACHMENT)
    body["message"]["attachments"][0].update(isInline=True, contentId="logo")

    status, code, message = graph_error(_post(graph_client(owner), body))

    assert (status, code) == (400, "ErrorAttachmentTypeNotSupported")
    assert "attachments[0]" in message
    assert not Email.objects.exists()


def test_an_item_attachment_is_refused(owner):
    body = sample(DOCS_SEND_MAIL)
    body["message"]["attachments"] = [
        {"@odata.type": "#microsoft.graph.itemAttachment", "name": "x"}
    ]

    assert graph_error(_post(graph_client(owner), body))[:2] == (
        400,
        "ErrorAttachmentTypeNotSupported",
    )


def test_bad_base64_writes_nothing(owner):
    body = sample(DOCS_SEND_MAIL_WITH_ATTACHMENT)
    body["message"]["attachments"][0]["contentBytes"] = "not base64!"

    response = _post(graph_client(owner), body)

    status, code, message = graph_error(response)
    assert status == 400 and "base64" in message
    assert not Email.objects.exists() and not AttachmentBlob.objects.exists()


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b'{"message": ', "Unable to read JSON request payload"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b'{"message": {"subject": 5}}', "subject must be a string"),
        (b'{"message": {"toRecipients": {"a": 1}}}', "toRecipients must be an array"),
        (b'{"message": {"toRecipients": [7]}}', "toRecipients[0]"),
        (b'{"message": {"importance": "urgent"}}', "importance must be Low, Normal or High"),
        (b'{"message": {"body": {"contentType": "rtf"}}}', "body.contentType"),
        (b'{"message": {"subjekt": "typo"}}', "The property 'subjekt' does not exist"),
        (b'{"message": {}, "saveToSentItems": "maybe"}', "saveToSentItems must be a boolean"),
        (b"{}", "needs a message"),
        (b'{"message": {"body": {"content": "a\\u0000b"}}}', "NUL"),
        (b'{"message": {"mentions": [{}]}}', "mentions"),
        (b"[" * 5000 + b"]" * 5000, "nested deeper"),
    ],
)
def test_malformed_bodies_are_bad_requests_never_500(owner, raw, said):
    response = graph_client(owner).post(f"{BASE}/me/sendMail", raw, content_type="application/json")

    status, code, message = graph_error(response)
    assert (status, code) == (400, "BadRequest")
    assert said in message
    assert not Email.objects.exists()


def test_mime_content_is_refused_as_unsupported(owner):
    response = graph_client(owner).post(
        f"{BASE}/me/sendMail", b"RnJvbTogQWRlbGU=", content_type="text/plain"
    )

    status, code, message = graph_error(response)
    assert status == 415 and "MIME" in message


def test_a_body_over_the_limit_is_refused_unread(owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"message": {"subject": "x" * 2000}})

    response = graph_client(owner).post(
        f"{BASE}/me/sendMail", body, content_type="application/json"
    )

    assert graph_error(response)[:2] == (413, "ErrorMessageSizeExceeded")


def test_without_a_token_it_is_invalid_authentication_token():
    status, code, message = graph_error(_post(graph_client(), sample(DOCS_SEND_MAIL)))

    assert (status, code) == (401, "InvalidAuthenticationToken")
    assert message.startswith("Access token is empty.")


def test_a_wrong_token_is_invalid_authentication_token():
    client = graph_client()
    client.credentials(HTTP_AUTHORIZATION="Bearer nope")

    assert graph_error(_post(client, sample(DOCS_SEND_MAIL)))[:2] == (
        401,
        "InvalidAuthenticationToken",
    )


def test_a_queue_sender_with_no_recipients_left_is_refused(owner):
    body = {"message": {"subject": "nobody"}}

    status, code, message = graph_error(_post(graph_client(owner), body))

    assert (status, code) == (400, "ErrorInvalidRecipients")
    assert "no recipients" in message
    assert not Email.objects.exists()


def test_the_queue_of_another_team_is_refused_even_by_address(owner):
    QueueFactory(name="Sales", email="sales@example.com")

    response = _post(
        graph_client(owner), sample(DOCS_SEND_MAIL), "users/sales@example.com/sendMail"
    )

    assert graph_error(response)[:2] == (403, "ErrorSendAsDenied")


@pytest.mark.parametrize("path", ["me/sendmail", "ME/SENDMAIL", "Users/alice/SendMail"])
def test_paths_are_case_insensitive_as_in_graph(owner, path):
    assert _post(graph_client(owner), sample(DOCS_SEND_MAIL), path).status_code == 202
    assert Email.objects.get().sender_user == owner
