"""Genesys' Web Services email operations (/api/v2/me/emails): their documented
requests, our rules, refusals in Genesys' shape."""

from __future__ import annotations

import pytest

from activities.models import ActivityMimeAttachment, Email, EmailEvent, EmailStatus, PartyRole
from activities.services.emails import email_create
from tests.api import client_for
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db

GENESYS_ERROR_KEYS = {
    "statusCode",
    "statusMessage",
    "message",
    "code",
    "status",
    "messageParams",
    "contextId",
    "details",
    "errors",
}


def hex_id(email: Email) -> str:
    return f"{email.pk:016x}"


def draft(actor, **fields) -> Email:
    return email_create(actor=actor, **fields)


def send_body(**email) -> dict:
    return {
        "operationName": "Send",
        "queueName": "Support",
        "email": {
            "body": "<p>Feels like good.</p>",
            "to": ["ann@example.com"],
            "from": "support@example.com",
            "subject": "Hello Email",
            **email,
        },
    }


def post(user, id: str, body) -> object:
    return client_for(user).post(f"/api/v2/me/emails/{id}", body, format="json")


def assert_genesys_error(response, http_status: int, status_code: int, *words: str) -> dict:
    assert response.status_code == http_status, response.content
    body = response.json()
    assert set(body) == GENESYS_ERROR_KEYS
    assert body["statusCode"] == status_code
    assert body["status"] == http_status
    assert body["message"] == body["statusMessage"]
    for word in words:
        assert word in body["message"]
    return body


def assert_untouched(email: Email) -> None:
    """Still the draft it was: no status change, no event beyond its creation."""
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT
    assert EmailEvent.objects.filter(email=email).count() == 1


# --- Send ------------------------------------------------------------------------------


def test_send_sets_the_email_and_queues_it_from_the_named_queue(org, owner, team_queue):
    email = draft(owner)
    body = send_body(
        to=["ann@example.com", {"email": "bob@example.com", "name": "Bob Berg"}],
        cc="carl@example.com, Dora Dean <dora@example.com>",
        bcc=[{"email": "eve@example.com"}],
        bodyAsPlainText="Feels like good.",
    )
    response = post(owner, hex_id(email), body)
    assert response.status_code == 200, response.content
    assert response.json() == {"statusCode": 0}
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND
    assert email.sender_queue == team_queue
    assert email.from_address == "support@example.com"
    assert email.subject.startswith("Hello Email")
    assert (email.body_html, email.body_text) == ("<p>Feels like good.</p>", "Feels like good.")
    parties = {(p.role, p.address, p.name) for p in email.parties.exclude(role=PartyRole.FROM)}
    assert parties == {
        ("to", "ann@example.com", ""),
        ("to", "bob@example.com", "Bob Berg"),
        ("cc", "carl@example.com", ""),
        ("cc", "dora@example.com", "Dora Dean"),
        ("bcc", "eve@example.com", ""),
    }


def test_send_takes_the_parameter_names_in_the_casing_clients_send(org, owner, team_queue):
    email = draft(owner)
    body = {
        "OperationName": "Send",
        "QueueName": "support",
        "Email": {"Subject": "Hi", "BodyAsPlainText": "Hello", "To": "ann@example.com"},
        "SaveLAR": True,
    }
    response = post(owner, hex_id(email), body)
    assert response.status_code == 200, response.content
    email.refresh_from_db()
    assert (email.status, email.body_text) == (EmailStatus.PENDING_SEND, "Hello")


def test_the_decimal_id_names_the_same_email(org, owner, team_queue):
    email = draft(owner)
    assert post(owner, str(email.pk), send_body()).status_code == 200
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND


def test_the_documented_sample_is_refused_for_its_placeholder_address(org, owner, team_queue):
    email = draft(owner)
    sample = {
        "operationName": "Send",
        "queueName": "Support",
        "email": {
            "body": "Feelslikegood.",
            "to": ["qwerty@gplus-w2k3-gf80", "bruce.one@witcher.xyz"],
            "from": "support@example.com",
            "subject": "HelloEmail",
        },
    }
    response = post(owner, hex_id(email), sample)
    assert_genesys_error(response, 400, 10, "email.to[0]", "qwerty@gplus-w2k3-gf80")
    assert_untouched(email)


@pytest.mark.parametrize(
    ("to", "named"),
    [
        (["ann@example.com", {"name": "Bob"}], "email.to[1] has no address"),
        (["ann@example.com", ""], "email.to[1] has no address"),
        ([{"email": "  ", "name": "Bob"}], "email.to[0] has no address"),
        ("Bob <>", "email.to[0] has no address"),
    ],
)
def test_a_recipient_without_an_address_is_refused_naming_it(org, owner, team_queue, to, named):
    email = draft(owner)
    response = post(owner, hex_id(email), send_body(to=to))
    body = assert_genesys_error(response, 400, 10, named)
    assert body["code"] == "invalid_address"
    assert_untouched(email)


def test_an_unknown_queue_is_refused_and_nothing_changes(org, owner, team_queue):
    email = draft(owner, subject="Before")
    body = {**send_body(), "queueName": "Nobody's queue"}
    response = post(owner, hex_id(email), body)
    error = assert_genesys_error(response, 400, 6, "no queue named", "Nobody's queue")
    assert error["code"] == "unknown_queue"
    assert_untouched(email)
    assert email.subject == "Before"


def test_a_missing_queue_name_is_a_missing_parameter(org, owner, team_queue):
    email = draft(owner)
    body = send_body()
    del body["queueName"]
    assert_genesys_error(post(owner, hex_id(email), body), 400, 1, "queueName is required")
    assert_untouched(email)


def test_a_queue_the_user_is_not_a_member_of_is_not_allowed(org, owner, team_queue):
    QueueFactory(name="Sales", email="sales@example.com")
    email = draft(owner)
    body = {**send_body(**{"from": "sales@example.com"}), "queueName": "Sales"}
    response = post(owner, hex_id(email), body)
    error = assert_genesys_error(response, 403, 5)
    assert error["code"] == "sender_not_allowed"
    assert_untouched(email)
    assert email.sender_user == owner


def test_a_from_that_is_not_the_queues_address_is_refused(org, owner, team_queue):
    email = draft(owner)
    response = post(owner, hex_id(email), send_body(**{"from": "someone@else.example"}))
    assert_genesys_error(response, 400, 10, "email.from", "support@example.com")
    assert_untouched(email)


def test_an_unapproved_queue_refuses_the_send_and_keeps_no_edit(org, owner, teammate):
    queue = QueueFactory(
        name="Support",
        email="support@example.com",
        members=[owner],
        email_router_access_approval="pending_approval",
    )
    org.require_approval_for_queue_email = True
    org.save()
    email = draft(owner, subject="Before")
    error = assert_genesys_error(post(owner, hex_id(email), send_body()), 400, 10, "approved")
    assert error["code"] == "sender_not_approved"
    assert_untouched(email)
    assert (email.subject, email.sender_queue) == ("Before", None)
    assert queue.email == "support@example.com"


def test_sending_an_email_already_queued_is_a_wrong_status(org, owner, team_queue):
    email = draft(owner)
    assert post(owner, hex_id(email), send_body()).status_code == 200
    error = assert_genesys_error(post(owner, hex_id(email), send_body()), 409, 2)
    assert error["code"] == "invalid_status"
    assert EmailEvent.objects.filter(email=email).count() == 2


def test_the_teammate_may_not_see_the_owners_own_email(org, owner, teammate, team_queue):
    email = draft(owner)
    assert_genesys_error(post(teammate, hex_id(email), send_body()), 404, 6)
    assert_untouched(email)


def test_the_outsider_sees_no_email(org, owner, outsider, team_queue):
    email = draft(owner)
    assert_genesys_error(post(outsider, hex_id(email), send_body()), 404, 6)
    assert_untouched(email)


def test_the_teammate_sends_a_draft_of_their_queue(org, owner, teammate, team_queue):
    email = draft(owner, sender=team_queue)
    assert post(teammate, hex_id(email), send_body()).status_code == 200
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND


def test_staff_see_the_email_but_may_not_send_as_its_queue(org, owner, staff, team_queue):
    email = draft(owner, sender=team_queue)
    error = assert_genesys_error(post(staff, hex_id(email), send_body()), 403, 5)
    assert error["code"] == "sender_not_allowed"
    assert_untouched(email)


def test_an_anonymous_request_is_not_authenticated(org, owner):
    email = draft(owner)
    response = client_for(None).post(
        f"/api/v2/me/emails/{hex_id(email)}", send_body(), format="json"
    )
    assert_genesys_error(response, 401, 20)
    assert_untouched(email)


@pytest.mark.parametrize(
    "id", ["not-an-id", "ffffffffffffffff", "0", "{00000000-0000-0000-0000-000000000001}"]
)
def test_an_id_that_names_no_email_is_not_found(org, owner, id):
    assert_genesys_error(post(owner, id, send_body()), 404, 6)


@pytest.mark.parametrize(
    ("body", "status_code", "words"),
    [
        ([1, 2], 10, "JSON object"),
        ({"queueName": "Support"}, 1, "operationName is required"),
        ({"operationName": 5}, 10, "operationName must be a string"),
        ({"operationName": "Transfer"}, 3, "not offered"),
        ({**send_body(), "email": None}, 1, "email is required"),
        ({**send_body(), "email": "text"}, 10, "must be a JSON object"),
        ({**send_body(), "saveLAR": "maybe"}, 10, "saveLAR"),
        ({**send_body(), "shoeSize": 9}, 10, "shoeSize"),
        (send_body(subject=["a"]), 10, "email.subject must be a string"),
        (send_body(to=5), 10, "email.to must be a list"),
        (send_body(to=[["a@example.com"]]), 10, "email.to[0]"),
        (send_body(subject="Hi\r\nBcc: x@example.com"), 10, "line breaks"),
        (send_body(body="a\x00b"), 10, "NUL"),
        ({**send_body(), "queueName": "Sup\x00port"}, 10, "NUL"),
        ({"operationName": "Reply", "queueUri": "/queues/" + "9" * 30}, 6, "no queue"),
        (send_body(mime="Subject: x\r\n\r\na\x00b"), 10, "NUL"),
        (
            send_body(
                mime="Subject: x\r\nContent-Type: text/plain\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\nYQBi\r\n"
            ),
            10,
            "NUL",
        ),
    ],
)
def test_malformed_input_is_a_400_in_genesys_shape(
    org, owner, team_queue, body, status_code, words
):
    email = draft(owner)
    assert_genesys_error(post(owner, hex_id(email), body), 400, status_code, words)
    assert_untouched(email)


def test_malformed_json_is_a_400_in_genesys_shape(org, owner):
    email = draft(owner)
    response = client_for(owner).post(
        f"/api/v2/me/emails/{hex_id(email)}", b'{"operationName": ', content_type="application/json"
    )
    assert_genesys_error(response, 400, 10, "JSON")


def test_deeply_nested_json_is_a_400(org, owner):
    email = draft(owner)
    deep = "[" * 5000 + "]" * 5000
    response = client_for(owner).post(
        f"/api/v2/me/emails/{hex_id(email)}",
        f'{{"operationName": "Send", "email": {deep}}}',
        content_type="application/json",
    )
    assert_genesys_error(response, 400, 10, "nested")


# --- mime --------------------------------------------------------------------------------

MESSAGE = (
    "From: Support <support@example.com>\r\n"
    "To: Ann Lee <ann@example.com>\r\n"
    "Cc: carl@example.com\r\n"
    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b1"\r\n'
    "\r\n"
    "--b1\r\n"
    'Content-Type: multipart/alternative; boundary="b2"\r\n'
    "\r\n"
    "--b2\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Hello Ann\r\n"
    "--b2\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<p>Hello Ann</p>\r\n"
    "--b2--\r\n"
    "--b1\r\n"
    'Content-Type: text/csv; name="figures.csv"\r\n'
    'Content-Disposition: attachment; filename="figures.csv"\r\n'
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "YSxiCjEsMgo=\r\n"
    "--b1--\r\n"
)


def test_a_whole_message_in_mime_sets_the_email_with_its_attachment(org, owner, team_queue):
    email = draft(owner)
    body = {"operationName": "Send", "queueName": "Support", "email": {"mime": MESSAGE}}
    response = post(owner, hex_id(email), body)
    assert response.status_code == 200, response.content
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND
    assert email.subject.startswith("Grüße")
    assert (email.body_text.strip(), email.body_html.strip()) == ("Hello Ann", "<p>Hello Ann</p>")
    parties = {(p.role, p.address) for p in email.parties.exclude(role=PartyRole.FROM)}
    assert parties == {("to", "ann@example.com"), ("cc", "carl@example.com")}
    (attachment,) = ActivityMimeAttachment.objects.filter(email=email)
    assert (attachment.filename, attachment.mime_type, attachment.blob.size) == (
        "figures.csv",
        "text/csv",
        8,
    )


def test_mime_as_the_bodys_type_is_taken_as_their_docs_describe_it(org, owner, team_queue):
    email = draft(owner)
    response = post(owner, hex_id(email), send_body(body="Plain words", mime="text/plain"))
    assert response.status_code == 200, response.content
    email.refresh_from_db()
    assert (email.body_text, email.body_html) == ("Plain words", "")


@pytest.mark.parametrize(
    ("mime", "words"),
    [
        ("just some words", "neither a MIME type"),
        ("From: support@example.com\r\nTo: Bob <>\r\n\r\nHi", "without an address"),
        (
            "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
            + "--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n" * 300
            + "--x--\r\n",
            "more than",
        ),
    ],
)
def test_a_bad_mime_is_refused_naming_it(org, owner, team_queue, settings, mime, words):
    settings.CRM_INBOUND_MAX_PARTS = 50
    email = draft(owner)
    response = post(owner, hex_id(email), {**send_body(), "email": {"mime": mime}})
    assert_genesys_error(response, 400, 10, "email.mime", words)
    assert_untouched(email)


def test_a_mime_over_the_size_limit_is_refused(org, owner, team_queue, settings):
    settings.CRM_INBOUND_MAX_BYTES = 1000
    email = draft(owner)
    mime = "From: a@example.com\r\nSubject: big\r\n\r\n" + "x" * 2000
    response = post(owner, hex_id(email), {**send_body(), "email": {"mime": mime}})
    assert_genesys_error(response, 400, 10, "larger than 1000 bytes")
    assert_untouched(email)


# --- Create, Reply, Cancel, the resource ---------------------------------------------------


def test_create_makes_a_draft_of_the_queue_that_send_then_sends(org, owner, team_queue):
    client = client_for(owner)
    created = client.post(
        "/api/v2/me/emails",
        {"operationName": "Create", "queueUri": f"http://crm/api/v2/queues/{team_queue.pk}"},
        format="json",
    )
    assert created.status_code == 200, created.content
    answer = created.json()
    assert answer["statusCode"] == 0
    email = Email.objects.get()
    assert answer["id"] == hex_id(email)
    assert answer["uri"] == f"/api/v2/me/emails/{hex_id(email)}"
    assert (email.status, email.sender_queue) == (EmailStatus.DRAFT, team_queue)
    assert post(owner, answer["id"], send_body()).status_code == 200
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND


def test_create_for_a_queue_the_user_is_not_in_is_refused(org, outsider, team_queue):
    response = client_for(outsider).post(
        "/api/v2/me/emails", {"operationName": "Create", "queueName": "Support"}, format="json"
    )
    assert_genesys_error(response, 403, 5)
    assert not Email.objects.exists()


def test_reply_creates_a_draft_to_the_original_sender_from_the_queue(org, owner, team_queue):
    original = Email.objects.create(
        subject="A question",
        direction="incoming",
        status=EmailStatus.RECEIVED,
        state="completed",
        sender_queue=None,
        message_id="<q1@example.com>",
    )
    original.parties.create(role=PartyRole.FROM, address="ann@example.com", name="Ann Lee")
    original.parties.create(role=PartyRole.TO, address="support@example.com", queue=team_queue)
    response = post(owner, hex_id(original), {"operationName": "Reply", "queueName": "Support"})
    assert response.status_code == 200, response.content
    reply = Email.objects.get(pk=int(response.json()["id"], 16))
    assert (reply.status, reply.sender_queue, reply.parent) == (
        EmailStatus.DRAFT,
        team_queue,
        original,
    )
    assert reply.subject == "Re: A question"
    assert reply.in_reply_to == "<q1@example.com>"
    assert [p.address for p in reply.parties.filter(role=PartyRole.TO)] == ["ann@example.com"]
    assert reply.body_text == ""


def test_cancel_withdraws_a_draft(org, owner):
    email = draft(owner)
    assert post(owner, hex_id(email), {"operationName": "Cancel"}).json() == {"statusCode": 0}
    email.refresh_from_db()
    assert email.status == EmailStatus.CANCELED


def test_get_answers_the_email_resource(org, owner, team_queue):
    email = draft(owner, sender=team_queue, subject="Hi", to=["ann@example.com"], body_text="x")
    response = client_for(owner).get(f"/api/v2/me/emails/{hex_id(email)}")
    assert response.status_code == 200, response.content
    resource = response.json()["email"]
    assert resource["id"] == hex_id(email)
    assert resource["state"] == "Composing"
    assert resource["capabilities"] == ["Send", "Cancel"]
    assert (resource["from"], resource["to"], resource["subject"]) == (
        "support@example.com",
        ["ann@example.com"],
        "Hi",
    )


def received_from_ann(queue) -> Email:
    original = Email.objects.create(
        subject="A question",
        body_text="Where is my order?",
        direction="incoming",
        status=EmailStatus.RECEIVED,
        state="completed",
        message_id="<q2@example.com>",
    )
    original.parties.create(role=PartyRole.FROM, address="ann@example.com", name="Ann Lee")
    original.parties.create(role=PartyRole.TO, address=queue.email, queue=queue)
    original.parties.create(role=PartyRole.CC, address="carl@example.com")
    return original


def test_reply_all_quotes_the_original_with_the_prefix_asked_for(org, owner, team_queue):
    original = received_from_ann(team_queue)
    body = {"operationName": "ReplyAll", "subjectPrefix": "AW: ", "quoteOriginal": True}
    response = post(owner, hex_id(original), body)
    assert response.status_code == 200, response.content
    reply = Email.objects.get(pk=int(response.json()["id"], 16))
    assert reply.subject == "AW: A question"
    assert reply.sender_queue == team_queue  # the queue it was addressed to
    assert "> Where is my order?" in reply.body_text
    parties = {(p.role, p.address) for p in reply.parties.exclude(role=PartyRole.FROM)}
    assert parties == {("to", "ann@example.com"), ("cc", "carl@example.com")}


def test_the_outsider_may_not_reply_to_the_queues_mail(org, outsider, team_queue):
    original = received_from_ann(team_queue)
    assert_genesys_error(post(outsider, hex_id(original), {"operationName": "Reply"}), 404, 6)
    assert Email.objects.count() == 1


def test_create_with_a_parent_threads_the_draft(org, owner, team_queue):
    original = received_from_ann(team_queue)
    response = client_for(owner).post(
        "/api/v2/me/emails",
        {"operationName": "Create", "queueName": "Support", "parentId": hex_id(original)},
        format="json",
    )
    assert response.status_code == 200, response.content
    created = Email.objects.get(pk=int(response.json()["id"], 16))
    assert (created.parent, created.in_reply_to) == (original, "<q2@example.com>")


def test_send_is_not_an_operation_of_the_collection(org, owner, team_queue):
    response = client_for(owner).post("/api/v2/me/emails", send_body(), format="json")
    assert_genesys_error(response, 400, 3, "Create")
    assert not Email.objects.exists()


def test_the_outsider_cannot_read_the_email_resource(org, owner, outsider):
    email = draft(owner)
    response = client_for(outsider).get(f"/api/v2/me/emails/{hex_id(email)}")
    assert_genesys_error(response, 404, 6)


def test_a_repeated_send_with_its_idempotency_key_sends_once(org, owner, team_queue):
    email = draft(owner)
    client = client_for(owner)
    url = f"/api/v2/me/emails/{hex_id(email)}"
    first = client.post(url, send_body(), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post(url, send_body(), format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json() == {"statusCode": 0}
    assert EmailEvent.objects.filter(email=email, to_status=EmailStatus.PENDING_SEND).count() == 1


# --- what a whole message carries beyond Genesys' parameters --------------------------

OPTIONS_MESSAGE = (
    "From: support@example.com\r\n"
    "To: ann@example.com\r\n"
    "Reply-To: Orders <orders@example.com>\r\n"
    "Subject: Your order\r\n"
    "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n"
    "Message-ID: <client-made@example.com>\r\n"
    "X-Campaign: winter\r\n"
    "Disposition-Notification-To: support@example.com\r\n"
    "Return-Receipt-To: support@example.com\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "It shipped.\r\n"
)


def test_a_whole_message_carries_reply_to_custom_headers_and_receipts_to_the_mail(
    org, owner, team_queue, smtp_settings, eager_celery, django_capture_on_commit_callbacks
):
    email = draft(owner)
    body = {"operationName": "Send", "queueName": "Support", "email": {"mime": OPTIONS_MESSAGE}}
    with django_capture_on_commit_callbacks(execute=True):
        response = post(owner, hex_id(email), body)
    assert response.status_code == 200, response.content
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    assert email.headers == [{"name": "X-Campaign", "value": "winter"}]
    assert (email.request_delivery_receipt, email.request_read_receipt) == (True, True)
    assert [p.address for p in email.parties.filter(role=PartyRole.REPLY_TO)] == [
        "orders@example.com"
    ]
    (mail,) = smtp_settings.messages
    assert mail.rcpt_tos == ["ann@example.com"]  # Reply-To is no recipient
    message = mail.message
    assert message["Reply-To"].addresses[0].addr_spec == "orders@example.com"
    assert message["X-Campaign"] == "winter"
    assert message["Disposition-Notification-To"] == "support@example.com"
    assert message["Return-Receipt-To"] == "support@example.com"
    assert message["Message-ID"] == email.message_id != "<client-made@example.com>"


def test_a_refused_header_in_the_message_is_named_and_nothing_changes(org, owner, team_queue):
    email = draft(owner)
    mime = "From: support@example.com\r\nTo: ann@example.com\r\nX Bad Name: 1\r\n\r\nHi\r\n"
    mime = mime.replace("X Bad Name: 1", "X-A: 1\r\nX-A: 2")
    body = {"operationName": "Send", "queueName": "Support", "email": {"mime": mime}}
    error = assert_genesys_error(post(owner, hex_id(email), body), 400, 10, "X-A", "twice")
    assert error["code"] == "invalid_header"
    assert_untouched(email)
    assert email.headers == []


def test_a_form_encoded_body_is_an_unsupported_media_type(org, owner):
    email = draft(owner)
    response = client_for(owner).post(
        f"/api/v2/me/emails/{hex_id(email)}", {"operationName": "Send"}, format="multipart"
    )
    assert_genesys_error(response, 415, 10)
    assert_untouched(email)


def test_the_agents_list_is_not_offered(org, owner):
    assert_genesys_error(client_for(owner).get("/api/v2/me/emails"), 405, 3)
