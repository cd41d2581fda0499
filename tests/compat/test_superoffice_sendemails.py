"""SuperOffice's EMail agent ``SendEMails`` (compat/superoffice): each e-mail of a
batch created and sent on its own, in one transaction, answered as EMailEntity."""

from __future__ import annotations

import base64
import os

import pytest

from activities.models import Email, EmailEvent, EmailStatus, PartyRole, Priority
from tests.api import client_for

from .superoffice import DOCUMENTED_SAMPLE

pytestmark = pytest.mark.django_db

URL = "/api/v1/Agents/EMail/SendEMails"
PDF = b"%PDF-1.4\n" + os.urandom(40_000)


def entity(**fields):
    return {
        "To": [{"Address": "ann@example.com", "Name": "Ann Lee"}],
        "Subject": "Quarterly figures",
        "PlainBody": "Hello Ann",
        **fields,
    }


def post(user, body, *, query: str = "", **kwargs):
    return client_for(user).post(URL + query, body, format="json", **kwargs)


def test_the_documented_sample_request_is_refused_naming_the_recipient_without_address(owner):
    response = post(owner, DOCUMENTED_SAMPLE)

    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"Error", "ErrorType", "Message"}
    assert body["Error"] == "Bad Request"
    assert "Emails[0].To[0]" in body["Message"]
    assert "no Address" in body["Message"]
    assert Email.objects.count() == 0
    assert EmailEvent.objects.count() == 0


def test_one_email_is_created_and_queued_as_the_caller_and_answered_as_an_entity(
    org, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(
            owner,
            {
                "OutgoingConnectionInfo": None,
                "Emails": [
                    entity(
                        HTMLBody="<p>Hello Ann</p>",
                        Cc=[{"Address": "cy@example.com"}],
                        Bcc=[{"Address": "audit@example.com", "Name": ""}],
                        Priority="Highest",
                    )
                ],
                "SentItemsConnectionInfo": None,
            },
        )

    assert response.status_code == 200
    [answer] = response.json()
    email = Email.objects.get()
    assert email.status == EmailStatus.PENDING_SEND
    assert email.sender_user == owner and email.created_by == owner
    assert email.priority == Priority.HIGH
    assert (email.body_text, email.body_html) == ("Hello Ann", "<p>Hello Ann</p>")
    parties = {(p.role, p.address, p.name) for p in email.parties.all()}
    assert parties == {
        (PartyRole.FROM, "alice@staff.example.com", "Alice Archer"),
        (PartyRole.TO, "ann@example.com", "Ann Lee"),
        (PartyRole.CC, "cy@example.com", ""),
        (PartyRole.BCC, "audit@example.com", ""),
    }
    assert len(callbacks) == 1  # the delivery, queued after commit
    assert answer["IsSent"] is True
    assert answer["ServerId"] == answer["EmailItemId"] == email.pk
    assert answer["EMailSOInfo"]["DocumentId"] == email.pk
    assert answer["EMailSOInfo"]["ArchivedBy"] == owner.pk
    assert answer["MessageID"] == email.message_id
    assert answer["Subject"] == email.subject  # with the tracking token
    assert answer["Priority"] == "High"
    assert answer["From"]["Address"] == "alice@staff.example.com"
    assert [a["Address"] for a in answer["To"]] == ["ann@example.com"]
    assert [a["Address"] for a in answer["Bcc"]] == ["audit@example.com"]
    assert answer["Sent"] is not None


def test_property_names_are_read_in_any_letter_case(owner):
    response = post(
        owner,
        {
            "emails": [
                {
                    "to": [{"address": "ann@example.com", "NAME": "Ann"}],
                    "SUBJECT": "Lower and upper",
                    "plainbody": "Hi",
                }
            ]
        },
    )

    assert response.status_code == 200, response.json()
    email = Email.objects.get()
    assert email.subject.startswith("Lower and upper")
    assert email.parties.get(role=PartyRole.TO).name == "Ann"


def test_attachments_reach_the_mail_server_byte_identical(
    org, owner, smtp_settings, eager_celery, django_capture_on_commit_callbacks
):
    attachments = [
        {
            "Filename": "terms.pdf",
            "Type": "application/pdf",
            "Stream": base64.b64encode(PDF).decode(),
            "Disposition": "attachment",
        },
        {"Filename": "notes.txt", "Stream": base64.b64encode(b"plain notes\r\n").decode()},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = post(owner, {"Emails": [entity(Attachments=attachments)]})

    assert response.status_code == 200
    [answer] = response.json()
    assert [(a["Filename"], a["Type"], a["Size"]) for a in answer["Attachments"]] == [
        ("terms.pdf", "application/pdf", len(PDF)),
        ("notes.txt", "text/plain", len(b"plain notes\r\n")),
    ]
    assert all(a["Stream"] is None for a in answer["Attachments"])
    [received] = smtp_settings.messages
    files = {
        part.get_filename(): part.get_payload(decode=True)
        for part in received.message.iter_attachments()
    }
    assert files == {"terms.pdf": PDF, "notes.txt": b"plain notes\r\n"}
    assert Email.objects.get().status == EmailStatus.SENT


def test_a_refused_email_is_not_written_and_the_others_are_sent(
    org, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(
            owner,
            {
                "Emails": [
                    entity(Subject="First"),
                    entity(Subject="Broken", To=[{"Address": "not an address"}]),
                    entity(Subject="Third", Priority=99),
                    entity(Subject="Fourth", Attachments=[{"Filename": "a.txt", "Stream": "!!"}]),
                    entity(Subject="Fifth"),
                ]
            },
        )

    assert response.status_code == 200
    answer = response.json()
    assert [a["IsSent"] for a in answer] == [True, False, False, False, True]
    assert answer[0]["Subject"].startswith("First")
    assert answer[1]["Subject"] == "Broken"
    assert answer[1]["SendError"]["ErrorType"] == "invalid_address"
    assert answer[1]["SendError"]["Message"].startswith("Emails[1]: ")
    assert "not an address" in answer[1]["SendError"]["Message"]
    assert answer[1]["ServerId"] == 0 and answer[1]["MessageID"] is None
    assert "Emails[2].Priority" in answer[2]["SendError"]["Message"]
    assert "Emails[3].Attachments[0].Stream: not base64" in answer[3]["SendError"]["Message"]
    subjects = sorted(Email.objects.values_list("subject", flat=True))
    assert [s.split(" CRM:")[0] for s in subjects] == ["Fifth", "First"]
    assert EmailEvent.objects.filter(reason="created").count() == 2
    assert len(callbacks) == 2


def test_when_no_email_can_be_sent_the_answer_is_the_refusal_naming_each(owner):
    response = post(
        owner,
        {
            "Emails": [
                entity(To=[{"Address": "ann@example.com"}, {"Name": "Bo"}]),
                entity(To=[]),
            ]
        },
    )

    assert response.status_code == 400
    message = response.json()["Message"]
    assert "Emails[0].To[1] (Bo): the recipient has no Address" in message
    assert "Emails[1]: the email has no recipients" in message
    assert Email.objects.count() == 0


def test_an_empty_batch_is_an_empty_answer(owner):
    response = post(owner, {"Emails": []})

    assert response.status_code == 200
    assert response.json() == []


def test_select_fills_only_the_properties_asked_for(owner):
    response = post(owner, {"Emails": [entity()]}, query="?$select=serverid,To/Address,Subject")

    assert response.status_code == 200
    [answer] = response.json()
    email = Email.objects.get()
    assert answer["ServerId"] == email.pk
    assert answer["Subject"] == email.subject
    assert answer["To"][0]["Address"] == "ann@example.com"
    assert answer["To"][0]["Name"] is None
    assert answer["MessageID"] is None and answer["EMailSOInfo"] is None
    assert answer["PlainBody"] is None and answer["From"] is None
    assert "FieldProperties" in answer  # nulled out, not left out


def test_select_keeps_the_reason_of_a_refused_email(owner):
    response = post(
        owner,
        {"Emails": [entity(), entity(To=[{"Address": "x"}])]},
        query="?$select=ServerId",
    )

    assert response.status_code == 200
    refused = response.json()[1]
    assert refused["ServerId"] == 0
    assert refused["SendError"]["ErrorType"] == "invalid_address"


def test_select_naming_an_unknown_property_is_refused_before_anything_is_written(owner):
    response = post(owner, {"Emails": [entity()]}, query="?$select=ServerId,Colour")

    assert response.status_code == 400
    assert response.json()["ErrorType"] == "invalid_select"
    assert "Colour" in response.json()["Message"]
    assert Email.objects.count() == 0


@pytest.mark.parametrize("key", ["OutgoingConnectionInfo", "SentItemsConnectionInfo"])
def test_a_connection_info_naming_another_server_is_refused_and_nothing_is_written(
    owner, smtp_settings, key
):
    info = {"ServerName": "smtp.attacker.example:25", "UserName": "u", "Password": "p"}
    response = post(owner, {key: info, "Emails": [entity()]})

    assert response.status_code == 400
    body = response.json()
    assert body["ErrorType"] == "connection_refused"
    assert key in body["Message"] and "smtp.attacker.example:25" in body["Message"]
    assert "127.0.0.1" not in body["Message"]  # where our mail goes is not told
    assert Email.objects.count() == 0
    assert smtp_settings.messages == []


def test_a_connection_info_naming_our_own_smtp_server_is_taken(owner, smtp_settings):
    info = {"ServerName": f"127.0.0.1:{smtp_settings.port}", "UseSSL": False, "Password": "x"}
    response = post(owner, {"OutgoingConnectionInfo": info, "Emails": [entity()]})

    assert response.status_code == 200
    assert Email.objects.count() == 1


def test_any_connection_info_is_refused_when_mail_goes_to_the_outbox(owner, settings):
    settings.EMAIL_BACKEND = "activities.mail.OutboxBackend"
    response = post(owner, {"OutgoingConnectionInfo": {}, "Emails": [entity()]})

    assert response.status_code == 400
    assert "names 'no server'" in response.json()["Message"]
    assert Email.objects.count() == 0
