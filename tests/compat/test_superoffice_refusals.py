"""SuperOffice's SendEMails: who may send as whom (the rules of /api/v1/), and input
that is malformed, of the wrong types, huge or deep: each a 4xx in SuperOffice's error
shape, never a 500, and nothing written."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from activities.models import Email, PartyRole
from crm.models import EmailApproval
from tests.api import client_for
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/Agents/EMail/SendEMails"


def entity(**fields):
    return {"To": [{"Address": "ann@example.com"}], "Subject": "Hello", **fields}


def post(user, body, **kwargs):
    return client_for(user).post(URL, body, format="json", **kwargs)


def assert_refused(response, status: int, code: str | None = None, *, names: str = "") -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"Error", "ErrorType", "Message"}
    if code is not None:
        assert body["ErrorType"] == code
    assert names in body["Message"]
    assert Email.objects.count() == 0
    return body


# --- who sends ---------------------------------------------------------------------------


def test_an_anonymous_call_is_refused_in_superoffice_shape():
    response = APIClient().post(URL, {"Emails": [entity()]}, format="json")

    assert_refused(response, 401, "not_authenticated")


def test_superoffice_basic_authentication_is_not_taken():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic dGplMDpUamUw")  # their sample's
    assert_refused(client.post(URL, {"Emails": [entity()]}, format="json"), 401)


def test_a_member_sends_as_the_queue_named_in_from(teammate, team_queue):
    response = post(teammate, {"Emails": [entity(From={"Address": "SUPPORT@example.com"})]})

    assert response.status_code == 200, response.json()
    email = Email.objects.get()
    assert email.sender_queue == team_queue and email.sender_user is None
    assert email.created_by == teammate
    assert response.json()[0]["From"]["Address"] == "support@example.com"


def test_an_outsider_may_not_send_as_the_queue(outsider, team_queue):
    response = post(outsider, {"Emails": [entity(From={"Address": "support@example.com"})]})

    assert_refused(response, 403, "sender_not_allowed", names="queue Support")


def test_a_user_may_not_send_as_another_user(owner, teammate):
    response = post(teammate, {"Emails": [entity(From={"Address": owner.email})]})

    assert_refused(response, 403, "sender_not_allowed", names="bob may not send as the user alice")


def test_staff_may_not_send_as_someone_else_either(staff, owner):
    response = post(staff, {"Emails": [entity(From={"Address": owner.email})]})

    assert_refused(response, 403, "sender_not_allowed")


def test_from_an_address_no_one_here_has_is_refused(owner):
    response = post(owner, {"Emails": [entity(From={"Address": "ghost@example.com"})]})

    assert_refused(response, 403, "sender_not_allowed", names="'ghost@example.com'")


def test_from_with_the_callers_own_address_or_none_sends_as_the_caller(owner):
    response = post(
        owner,
        {"Emails": [entity(From={"Address": owner.email, "Name": "x"}), entity(From={})]},
    )

    assert response.status_code == 200
    assert list(Email.objects.values_list("sender_user", flat=True)) == [owner.pk, owner.pk]


def test_an_unapproved_sender_is_refused_as_in_the_api(org, owner):
    org.require_approval_for_user_email = True
    org.save()
    owner.email_router_access_approval = EmailApproval.PENDING
    owner.save()

    response = post(owner, {"Emails": [entity()]})

    assert_refused(response, 400, "sender_not_approved", names="Emails[0]: sender address")


def test_the_sender_rules_hold_per_email_in_a_batch(teammate, team_queue):
    other = QueueFactory(name="Sales", email="sales@example.com")
    response = post(
        teammate,
        {
            "Emails": [
                entity(From={"Address": other.email}),
                entity(From={"Address": team_queue.email}),
            ]
        },
    )

    assert response.status_code == 200
    refused, sent = response.json()
    assert refused["SendError"]["ErrorType"] == "sender_not_allowed"
    assert refused["SendError"]["Error"] == "Forbidden"
    assert sent["IsSent"] is True
    assert Email.objects.get().sender_queue == team_queue


# --- malformed input -------------------------------------------------------------------


def raw(user, body: bytes | str, content_type: str = "application/json"):
    return client_for(user).generic("POST", URL, body, content_type=content_type)


def test_malformed_json_is_a_400(owner):
    assert_refused(raw(owner, b'{"Emails": [,]}'), 400, "parse_error", names="JSON parse error")


def test_json_nested_too_deep_is_a_400(owner):
    body = '{"Emails": [' + "[" * 5000 + "]" * 5000 + "]}"
    assert_refused(raw(owner, body), 400, "parse_error", names="nested deeper")


def test_a_body_that_is_not_json_is_a_415(owner):
    assert_refused(raw(owner, b"<Emails/>", "application/x-yaml"), 415)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ([], "must be an object"),
        ({}, "request.Emails"),
        ({"Emails": {"To": []}}, "request.Emails"),
        ({"Emails": [entity()] * 101}, "request.Emails"),
        ({"Emails": [], "Colour": "red"}, "request.Colour: not a field"),
        ({"Emails": [], "emails": []}, "given twice"),
    ],
)
def test_a_malformed_request_is_a_400_naming_the_property(owner, body, names):
    assert_refused(post(owner, body), 400, "invalid", names=names)


@pytest.mark.parametrize(
    ("email", "names"),
    [
        ("not an object", "Emails[0]: must be an object"),
        (entity(Subject=5), "Emails[0].Subject: must be a string"),
        (entity(To="ann@example.com"), "Emails[0].To"),
        (entity(To=["ann@example.com"]), "Emails[0].To[0]: must be an object"),
        (entity(To=[{"Address": 7}]), "Emails[0].To[0].Address: must be a string"),
        (entity(To=[{"Address": "ann@example.com", "Nick": "A"}]), "Emails[0].To[0].Nick"),
        (entity(Colour="red"), "Emails[0].Colour: not a field"),
        (entity(Priority="Urgent"), "Emails[0].Priority: 'Urgent' is not an EMailPriority"),
        (entity(Priority=True), "Emails[0].Priority"),
        (entity(From="me"), "Emails[0].From: must be an object"),
        (entity(Attachments=[{"Filename": "a.txt"}]), "Attachments[0].Stream: the attachment"),
        (entity(Attachments=[{"Stream": "aGk=", "Disposition": "x"}]), "Disposition: 'x'"),
        (entity(To=[{"Address": "ann@example.com\r\nBcc: x@example.com"}]), "line breaks"),
        (entity(Subject="Hi\r\nBcc: x@example.com"), "line breaks"),
        (entity(To=[{"Address": "a" * 400 + "@example.com"}]), "Emails[0].To[0].Address"),
        (entity(Subject="x" * 401), "subject is longer than 400"),
    ],
)
def test_an_email_that_cannot_be_read_is_refused_naming_the_property(owner, email, names):
    body = assert_refused(post(owner, {"Emails": [email]}), 400, names=names)
    assert body["Message"].startswith("no e-mail was sent: Emails[0]")


def test_an_attachment_over_the_organisations_limit_is_a_413(org, owner):
    org.max_attachment_bytes = 10
    org.save()
    attachment = {"Filename": "big.bin", "Stream": "QUJDREVGR0hJSktMTU5PUA=="}  # 16 bytes

    response = post(owner, {"Emails": [entity(Attachments=[attachment])]})

    assert_refused(response, 413, "attachment_too_large")


def test_a_huge_body_is_refused_without_a_500(owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"Emails": [entity(PlainBody="x" * 5000)]})

    response = raw(owner, body)

    assert 400 <= response.status_code < 500
    assert Email.objects.count() == 0


def test_the_ignored_properties_superoffice_sends_back_are_taken(owner):
    echoed = entity(
        Sent="2024-10-29T14:28:21+01:00",
        MessageID="<theirs@example.com>",
        EMailSOInfo={"DocumentId": 5},
        TableRight=None,
        FieldProperties={"fieldName": {}},
        To=[{"Address": "ann@example.com", "PersonId": 991, "DuplicatePersonIds": [1]}],
    )

    response = post(owner, {"Emails": [echoed]})

    assert response.status_code == 200
    email = Email.objects.get()
    assert email.message_id != "<theirs@example.com>"  # ours, fixed at send
    assert email.parties.get(role=PartyRole.TO).contact is None


def test_an_accept_header_without_json_or_xml_is_a_406(owner):
    response = post(owner, {"Emails": [entity()]}, HTTP_ACCEPT="text/html")

    assert_refused(response, 406, "not_acceptable")


def test_only_post_is_taken(owner):
    assert_refused(client_for(owner).get(URL), 405, "method_not_allowed")


def test_another_method_of_the_email_agent_is_a_404_in_superoffice_shape(owner):
    response = client_for(owner).post("/api/v1/Agents/EMail/Send", {}, format="json")

    assert_refused(response, 404, "not_found", names="offers SendEMails only, not 'Send'")
