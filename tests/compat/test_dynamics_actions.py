"""The Dynamics 365 attachments and the SendEmail family of actions, over the same
services as /api/v1/ (the request bodies as Microsoft's Web API reference shapes them)."""

from __future__ import annotations

import base64

import pytest

from activities.models import ActivityMimeAttachment, AttachmentBlob, Email, EmailEvent, EmailStatus
from activities.services.attachments import attachment_store
from compat.dynamics.ids import guid_of
from crm.models import OutgoingDelivery, Queue
from tests.api import client_for
from tests.factories import ContactFactory, EmailFactory, QueueFactory, TemplateFactory

pytestmark = pytest.mark.django_db

ROOT = "/api/data/v9.2"
PDF = b"%PDF-1.4 terms and conditions\n" * 20


def odata_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"].startswith("0x")
    return body["error"]


def send_email(client, email, **params):
    return client.post(
        f"{ROOT}/emails({guid_of(email.pk)})/Microsoft.Dynamics.CRM.SendEmail",
        params,
        format="json",
    )


# --- activitymimeattachments ------------------------------------------------------------


def test_attach_bytes_then_reuse_them_by_attachmentid_without_sending_them(owner):
    first = EmailFactory(sender_user=owner)
    second = EmailFactory(sender_user=owner)
    client = client_for(owner)
    response = client.post(
        f"{ROOT}/activitymimeattachments",
        {
            "objectid_activitypointer@odata.bind": f"/activitypointers({guid_of(first.pk)})",
            "objecttypecode": "email",
            "filename": "terms.pdf",
            "mimetype": "application/pdf",
            "body": base64.b64encode(PDF).decode(),
        },
        format="json",
        HTTP_PREFER="return=representation",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["filename"], created["filesize"], created["objecttypecode"]) == (
        "terms.pdf",
        len(PDF),
        "email",
    )
    reuse = client.post(
        f"{ROOT}/activitymimeattachments",
        {
            "objectid_email@odata.bind": f"/emails({guid_of(second.pk)})",
            "attachmentid@odata.bind": f"/attachments({created['_attachmentid_value']})",
        },
        format="json",
    )
    assert reuse.status_code == 204, reuse.content
    assert AttachmentBlob.objects.count() == 1
    copy = ActivityMimeAttachment.objects.get(email=second)
    assert (copy.filename, copy.mime_type) == ("terms.pdf", "application/pdf")
    assert reuse["OData-EntityId"].endswith(f"activitymimeattachments({guid_of(copy.pk)})")
    body = client.get(f"{ROOT}/activitymimeattachments({guid_of(copy.pk)})?$select=body,filename")
    assert base64.b64decode(body.json()["body"]) == PDF


def test_an_attachment_of_someone_elses_email_cannot_be_reused_or_seen(owner, outsider):
    theirs = EmailFactory(sender_user=outsider)
    attachment, _ = attachment_store(owner=theirs, source=PDF, filename="secret.pdf")
    mine = EmailFactory(sender_user=owner)
    client = client_for(owner)
    response = client.post(
        f"{ROOT}/activitymimeattachments",
        {
            "objectid_email@odata.bind": f"/emails({guid_of(mine.pk)})",
            "attachmentid@odata.bind": f"/attachments({guid_of(attachment.blob_id)})",
        },
        format="json",
    )
    error = odata_error(response, 404)
    assert attachment.blob.sha256 not in error["message"]
    odata_error(client.get(f"{ROOT}/activitymimeattachments({guid_of(attachment.pk)})"), 404)
    assert client.get(f"{ROOT}/activitymimeattachments").json()["value"] == []
    assert not ActivityMimeAttachment.objects.filter(email=mine).exists()


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"filename": "a.txt", "body": "aGk="}, 400, "name the attachment's email or template"),
        ({"filename": "a.txt", "body": "not base64!"}, 400, "base64"),
        ({"filename": "a.txt"}, 400, "needs filename and body"),
        ({"filename": 3, "body": "aGk="}, 400, "filename must be a string"),
        (
            {"filename": "a.txt", "body": "aGk=", "objecttypecode": "template"},
            400,
            "does not match",
        ),
        ({"filename": "a.txt", "body": "aGk=", "documentbody": "x"}, 400, "documentbody"),
    ],
)
def test_attachment_refusals_are_odata_errors_and_store_nothing(owner, body, status, needle):
    email = EmailFactory(sender_user=owner)
    if needle != "name the attachment's email or template":
        body = {**body, "objectid_email@odata.bind": f"/emails({guid_of(email.pk)})"}
    error = odata_error(
        client_for(owner).post(f"{ROOT}/activitymimeattachments", body, format="json"), status
    )
    assert needle in error["message"]
    assert not ActivityMimeAttachment.objects.exists()


def test_attaching_to_a_sent_email_is_a_409_and_deleting_an_attachment_works(owner):
    sent = EmailFactory(sender_user=owner, status=EmailStatus.SENT)
    client = client_for(owner)
    response = client.post(
        f"{ROOT}/activitymimeattachments",
        {
            "objectid_email@odata.bind": f"/emails({guid_of(sent.pk)})",
            "filename": "a.txt",
            "body": "aGk=",
        },
        format="json",
    )
    assert "this email is sent" in odata_error(response, 409)["message"]
    draft = EmailFactory(sender_user=owner)
    attachment, _ = attachment_store(owner=draft, source=b"hi", filename="a.txt")
    assert (
        client.delete(f"{ROOT}/activitymimeattachments({guid_of(attachment.pk)})").status_code
        == 204
    )
    assert not ActivityMimeAttachment.objects.exists()


def test_a_template_takes_an_attachment_from_staff_only(owner, staff):
    template = TemplateFactory()
    body = {
        "objectid_template@odata.bind": f"/templates({guid_of(template.pk)})",
        "objecttypecode": "template",
        "filename": "a.txt",
        "body": "aGk=",
    }
    odata_error(client_for(owner).post(f"{ROOT}/activitymimeattachments", body, format="json"), 403)
    assert (
        client_for(staff).post(f"{ROOT}/activitymimeattachments", body, format="json").status_code
        == 204
    )
    assert template.attachments.count() == 1


# --- SendEmail ------------------------------------------------------------------------


def test_send_email_with_issue_send_queues_it_and_answers_the_subject(owner, org):
    email = EmailFactory(sender_user=owner, subject="Quote", with_to="ann@example.org")
    response = send_email(client_for(owner), email, IssueSend=True, TrackingToken="")
    assert response.status_code == 200, response.content
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND
    assert response.json()["Subject"] == email.subject == f"Quote {email.tracking_token}"
    assert response.json()["@odata.context"].endswith(
        "$metadata#Microsoft.Dynamics.CRM.SendEmailResponse"
    )


def test_send_email_without_issue_send_marks_it_as_sent(owner):
    email = EmailFactory(sender_user=owner, subject="Logged", with_to="ann@example.org")
    response = send_email(client_for(owner), email, IssueSend=False)
    assert response.status_code == 200
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    assert EmailEvent.objects.filter(email=email, to_status=EmailStatus.SENT).count() == 1


@pytest.mark.parametrize(
    ("status", "params", "code", "needle"),
    [
        (EmailStatus.SENT, {"IssueSend": True}, 409, "status is sent"),
        (EmailStatus.DRAFT, {"IssueSend": "yes"}, 400, "IssueSend must be true or false"),
        (EmailStatus.DRAFT, {"IssueSend": True, "Bogus": 1}, 400, "not a parameter"),
    ],
)
def test_send_email_refusals_change_nothing(owner, status, params, code, needle):
    email = EmailFactory(sender_user=owner, status=status, with_to="ann@example.org")
    error = odata_error(send_email(client_for(owner), email, **params), code)
    assert needle in error["message"]
    email.refresh_from_db()
    assert email.status == status


def test_send_email_without_recipients_names_the_cause(owner):
    email = EmailFactory(sender_user=owner)
    error = odata_error(send_email(client_for(owner), email, IssueSend=True), 400)
    assert "no recipients" in error["message"]


# --- templates ------------------------------------------------------------------------


def test_send_email_from_template_creates_and_sends(owner):
    contact = ContactFactory(first_name="Ann", last_name="Lee", email="ann@customers.example.org")
    template = TemplateFactory(subject="Hello {{ contact.first_name }}")
    response = client_for(owner).post(
        f"{ROOT}/SendEmailFromTemplate",
        {
            "TemplateId": guid_of(template.pk),
            "Regarding": {
                "@odata.type": "Microsoft.Dynamics.CRM.contact",
                "contactid": guid_of(contact.pk),
            },
            "Target": {
                "@odata.type": "Microsoft.Dynamics.CRM.email",
                "email_activity_parties": [
                    {
                        "participationtypemask": 2,
                        "partyid_contact@odata.bind": f"/contacts({guid_of(contact.pk)})",
                    }
                ],
            },
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    email = Email.objects.get()
    assert email.status == EmailStatus.PENDING_SEND and email.template == template
    assert email.subject.startswith("Hello Ann")
    assert response.json()["activityid"] == guid_of(email.pk)
    assert response.json()["statuscode"] == 6


def test_instantiate_template_renders_without_saving(owner):
    contact = ContactFactory(first_name="Ann")
    template = TemplateFactory(subject="Hello {{ contact.first_name }}")
    response = client_for(owner).post(
        f"{ROOT}/InstantiateTemplate",
        {
            "TemplateId": guid_of(template.pk),
            "ObjectType": "contact",
            "ObjectId": guid_of(contact.pk),
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    [email] = response.json()["value"]
    assert email["subject"] == "Hello Ann"
    assert email["@odata.type"] == "#Microsoft.Dynamics.CRM.email"
    assert not Email.objects.exists()
    wrong = client_for(owner).post(
        f"{ROOT}/InstantiateTemplate",
        {
            "TemplateId": guid_of(template.pk),
            "ObjectType": "account",
            "ObjectId": guid_of(contact.account_id),
        },
        format="json",
    )
    assert "is for a contact record, not account" in odata_error(wrong, 400)["message"]
    odata_error(
        client_for(owner).post(
            f"{ROOT}/InstantiateTemplate",
            {"TemplateId": guid_of(template.pk), "ObjectType": "lead", "ObjectId": guid_of(1)},
            format="json",
        ),
        400,
    )


def test_get_tracking_token_email_answers_the_token_a_subject_carries(owner):
    client = client_for(owner)
    found = client.post(
        f"{ROOT}/GetTrackingTokenEmail", {"Subject": "Re: Quote CRM:0000042"}, format="json"
    )
    assert found.json()["TrackingToken"] == "CRM:0000042"
    none = client.post(f"{ROOT}/GetTrackingTokenEmail", {"Subject": "Hello"}, format="json")
    assert none.json()["TrackingToken"] == ""


# --- BackgroundSendEmail and the report by statuscode -----------------------------------


def _external_queue(owner) -> Queue:
    return QueueFactory(
        name="Relay",
        email="relay@example.com",
        members=[owner],
        outgoing_delivery=OutgoingDelivery.EXTERNAL,
    )


def test_background_send_email_claims_and_statuscode_reports_with_the_lease(owner):
    queue = _external_queue(owner)
    email = EmailFactory(sender_user=None, sender_queue=queue, with_to="ann@example.org")
    attachment_store(owner=email, source=PDF, filename="terms.pdf")
    client = client_for(owner)
    assert send_email(client, email, IssueSend=True).status_code == 200

    response = client.post(
        f"{ROOT}/BackgroundSendEmail",
        {
            "Query": {
                "@odata.type": "Microsoft.Dynamics.CRM.QueryExpression",
                "EntityName": "email",
                "PageInfo": {"Count": 10},
            }
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    [claimed] = body["EntityCollection"]
    assert body["HasAttachments"] == [True]
    assert (claimed["activityid"], claimed["statuscode"]) == (guid_of(email.pk), 7)
    assert (
        client.post(f"{ROOT}/BackgroundSendEmail", {}, format="json").json()["EntityCollection"]
        == []
    )

    url = f"{ROOT}/emails({guid_of(email.pk)})"
    no_lease = client.patch(url, {"statuscode": 3}, format="json")
    odata_error(no_lease, 412)
    stale = client.patch(url, {"statuscode": 3}, format="json", HTTP_IF_MATCH='W/"999.1"')
    assert "stale" in odata_error(stale, 409)["message"]
    done = client.patch(
        url,
        {"statecode": 1, "statuscode": 3, "messageid": "<relay-1@example.com>"},
        format="json",
        HTTP_IF_MATCH=claimed["@odata.etag"],
    )
    assert done.status_code == 204, done.content
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    again = client.patch(
        url, {"statuscode": 8}, format="json", HTTP_IF_MATCH=claimed["@odata.etag"]
    )
    odata_error(again, 400)
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT


def test_a_failed_report_by_statuscode_8_records_the_failure(owner):
    queue = _external_queue(owner)
    email = EmailFactory(sender_user=None, sender_queue=queue, with_to="ann@example.org")
    client = client_for(owner)
    send_email(client, email, IssueSend=True)
    [claimed] = client.post(f"{ROOT}/BackgroundSendEmail", format="json").json()["EntityCollection"]
    response = client.patch(
        f"{ROOT}/emails({guid_of(email.pk)})",
        {"statuscode": 8},
        format="json",
        HTTP_IF_MATCH=claimed["@odata.etag"],
    )
    assert response.status_code == 204, response.content
    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED


def test_background_send_email_claims_only_what_the_caller_may_see(owner, outsider):
    queue = _external_queue(owner)
    email = EmailFactory(sender_user=None, sender_queue=queue, with_to="ann@example.org")
    send_email(client_for(owner), email, IssueSend=True)
    body = client_for(outsider).post(f"{ROOT}/BackgroundSendEmail", format="json").json()
    assert body["EntityCollection"] == [] and body["HasAttachments"] == []
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND
    bad = client_for(owner).post(
        f"{ROOT}/BackgroundSendEmail", {"Query": {"PageInfo": {"Count": 0}}}, format="json"
    )
    odata_error(bad, 400)
    criteria = client_for(owner).post(
        f"{ROOT}/BackgroundSendEmail", {"Query": {"Criteria": {}}}, format="json"
    )
    assert "conditions are not applied" in odata_error(criteria, 400)["message"]
    odata_error(
        client_for(owner).post(
            f"{ROOT}/BackgroundSendEmail", "null", content_type="application/json"
        ),
        400,
    )
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING_SEND
