"""An integrator's Dynamics 365 Web API client over real HTTP (a live server and
``requests``), ending as mail at the real SMTP server or as refusals in OData's words."""

from __future__ import annotations

import base64

import pytest
import requests
from rest_framework.authtoken.models import Token

from activities.models import Email, EmailStatus
from compat.dynamics.ids import guid_of
from crm.models import EmailApproval, OutgoingDelivery
from tests.factories import ContactFactory, QueueFactory, TemplateFactory

pytestmark = pytest.mark.django_db(transaction=True)

PDF = bytes(range(256)) * 64  # every byte value: a copy must be byte-identical


class Dataverse:
    """A tiny Web API client: the headers a Dynamics client sends."""

    def __init__(self, base: str, token: str):
        self.base = f"{base}/api/data/v9.2"
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "OData-MaxVersion": "4.0",
                "OData-Version": "4.0",
            }
        )

    def post(self, path: str, body, **headers) -> requests.Response:
        return self.session.post(f"{self.base}/{path}", json=body, headers=headers, timeout=20)

    def patch(self, path: str, body, **headers) -> requests.Response:
        return self.session.patch(f"{self.base}/{path}", json=body, headers=headers, timeout=20)

    def get(self, path: str) -> requests.Response:
        return self.session.get(f"{self.base}/{path}", timeout=20)


def refusal(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"].startswith("0x")
    return error["message"]


@pytest.fixture
def dataverse(live_server, owner) -> Dataverse:
    return Dataverse(live_server.url, Token.objects.create(user=owner).key)


def test_draft_attach_reuse_send_mark_and_template_end_as_mail(
    dataverse, owner, smtp_settings, eager_celery
):
    contact = ContactFactory(first_name="Ann", last_name="Lee", email="ann@customers.example.org")
    me = {
        "participationtypemask": 1,
        "partyid_systemuser@odata.bind": f"/systemusers({guid_of(owner.pk)})",
    }
    to_ann = {
        "participationtypemask": 2,
        "partyid_contact@odata.bind": f"/contacts({guid_of(contact.pk)})",
    }

    created = dataverse.post(
        "emails",
        {
            "subject": "Terms",
            "description": "<p>Attached.</p>",
            "email_activity_parties": [me, to_ann],
        },
        Prefer="return=representation",
    )
    assert created.status_code == 201, created.text
    first = created.json()["activityid"]
    attached = dataverse.post(
        "activitymimeattachments",
        {
            "objectid_activitypointer@odata.bind": f"/activitypointers({first})",
            "objecttypecode": "email",
            "filename": "terms.pdf",
            "mimetype": "application/pdf",
            "body": base64.b64encode(PDF).decode(),
        },
        Prefer="return=representation",
    )
    assert attached.status_code == 201, attached.text

    second = dataverse.post(
        "emails",
        {
            "subject": "Terms again",
            "readreceiptrequested": True,
            "email_activity_parties": [me, to_ann],
        },
    )
    assert second.status_code == 204
    second_id = second.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    reused = dataverse.post(
        "activitymimeattachments",
        {
            "objectid_email@odata.bind": f"/emails({second_id})",
            "attachmentid@odata.bind": f"/attachments({attached.json()['_attachmentid_value']})",
        },
    )
    assert reused.status_code == 204, reused.text

    sent = dataverse.post(
        f"emails({second_id})/Microsoft.Dynamics.CRM.SendEmail",
        {"IssueSend": True, "TrackingToken": ""},
    )
    assert sent.status_code == 200, sent.text
    [message] = smtp_settings.messages
    assert message.rcpt_tos == ["ann@customers.example.org"]
    assert message.message["Subject"] == sent.json()["Subject"]
    assert message.message["Disposition-Notification-To"] == owner.email
    [part] = list(message.message.iter_attachments())
    assert (part.get_filename(), part.get_payload(decode=True)) == ("terms.pdf", PDF)
    assert dataverse.get(f"emails({second_id})?$select=statuscode").json()["statuscode"] == 3

    marked = dataverse.post(
        f"emails({first})/Microsoft.Dynamics.CRM.SendEmail", {"IssueSend": False}
    )
    assert marked.status_code == 200
    assert dataverse.get(f"emails({first})").json()["statuscode"] == 3
    assert len(smtp_settings.messages) == 1  # marked as sent: nothing delivered

    template = TemplateFactory(subject="Hello {{ contact.first_name }}")
    from_template = dataverse.post(
        "SendEmailFromTemplate",
        {
            "TemplateId": guid_of(template.pk),
            "Regarding": {
                "@odata.type": "Microsoft.Dynamics.CRM.contact",
                "contactid": guid_of(contact.pk),
            },
            "Target": {
                "@odata.type": "Microsoft.Dynamics.CRM.email",
                "email_activity_parties": [to_ann],
            },
        },
    )
    assert from_template.status_code == 200, from_template.text
    assert len(smtp_settings.messages) == 2
    assert smtp_settings.messages[1].message["Subject"].startswith("Hello Ann")
    assert Email.objects.filter(status=EmailStatus.SENT).count() == 3


def test_an_external_sender_claims_and_reports_by_statuscode(dataverse, owner, smtp_settings):
    relay = QueueFactory(name="Relay", members=[owner], outgoing_delivery=OutgoingDelivery.EXTERNAL)
    created = dataverse.post(
        "emails",
        {
            "subject": "Via the relay",
            "email_activity_parties": [
                {
                    "participationtypemask": 1,
                    "partyid_queue@odata.bind": f"/queues({guid_of(relay.pk)})",
                },
                {"participationtypemask": 2, "addressused": "ann@example.org"},
            ],
        },
    )
    email_id = created.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    assert dataverse.post(
        f"emails({email_id})/Microsoft.Dynamics.CRM.SendEmail", {"IssueSend": True}
    ).ok

    claim = dataverse.post(
        "BackgroundSendEmail", {"Query": {"EntityName": "email", "PageInfo": {"Count": 5}}}
    )
    assert claim.status_code == 200, claim.text
    [claimed] = claim.json()["EntityCollection"]
    assert claimed["statuscode"] == 7 and claim.json()["HasAttachments"] == [False]
    report = dataverse.patch(
        f"emails({email_id})",
        {"statecode": 1, "statuscode": 3},
        **{"If-Match": claimed["@odata.etag"]},
    )
    assert report.status_code == 204, report.text
    assert dataverse.get(f"emails({email_id})").json()["statuscode"] == 3
    again = dataverse.patch(
        f"emails({email_id})", {"statuscode": 8}, **{"If-Match": claimed["@odata.etag"]}
    )
    assert "reports the outcome of a claimed email" in refusal(again, 400)
    assert smtp_settings.messages == []  # the external sender delivered it, not us


def test_refusals_come_back_in_odata_words(dataverse, owner, smtp_settings):
    assert "Could not find a property named 'ownerid'" in refusal(
        dataverse.get("emails?$filter=ownerid eq 'x'"), 400
    )
    assert "email_activity_parties[0] (to): the recipient has no address" in refusal(
        dataverse.post("emails", {"email_activity_parties": [{"participationtypemask": 2}]}), 400
    )
    assert "is not a record id" in refusal(dataverse.get("emails(1234)"), 404)
    pending = QueueFactory(
        name="Sales", members=[owner], email_router_access_approval=EmailApproval.PENDING
    )
    created = dataverse.post(
        "emails",
        {
            "email_activity_parties": [
                {
                    "participationtypemask": 1,
                    "partyid_queue@odata.bind": f"/queues({guid_of(pending.pk)})",
                },
                {"participationtypemask": 2, "addressused": "ann@example.org"},
            ]
        },
    )
    email_id = created.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    send = f"emails({email_id})/Microsoft.Dynamics.CRM.SendEmail"
    assert "sender address is not approved" in refusal(
        dataverse.post(send, {"IssueSend": True}), 400
    )
    assert dataverse.post(send, {"IssueSend": False}).ok
    assert "status is sent" in refusal(dataverse.post(send, {"IssueSend": True}), 409)
    assert smtp_settings.messages == []
