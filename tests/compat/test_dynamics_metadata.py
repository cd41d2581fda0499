"""The Dynamics adapter's $metadata (CSDL) and service document."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
import requests
from odata import ODataService
from rest_framework.authtoken.models import Token

from compat.dynamics.entities import ATTACHMENT_PROPERTIES, EMAIL_PROPERTIES
from compat.dynamics.ids import guid_of
from compat.dynamics.metadata import ACTIONS, ENTITY_SETS
from tests.api import client_for
from tests.factories import EmailFactory, TemplateFactory

pytestmark = pytest.mark.django_db

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"


def _schema(owner):
    response = client_for(owner).get("/api/data/v9.2/$metadata")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    assert response["OData-Version"] == "4.0"
    root = ET.fromstring(response.content)
    assert root.tag == f"{EDMX}Edmx" and root.get("Version") == "4.0"
    return root.find(f"{EDMX}DataServices/{EDM}Schema")


def test_metadata_is_a_csdl_in_the_dynamics_namespace_with_the_email_entity(owner):
    schema = _schema(owner)
    assert (schema.get("Namespace"), schema.get("Alias")) == ("Microsoft.Dynamics.CRM", "mscrm")
    email = schema.find(f"{EDM}EntityType[@Name='email']")
    assert email.find(f"{EDM}Key/{EDM}PropertyRef").get("Name") == "activityid"
    types = {p.get("Name"): p.get("Type") for p in email.findall(f"{EDM}Property")}
    assert types["activityid"] == "Edm.Guid"
    assert types["directioncode"] == "Edm.Boolean"
    for name in ("subject", "description", "trackingtoken", "messageid"):
        assert types[name] == "Edm.String"
    for name in ("createdon", "modifiedon", "senton"):
        assert types[name] == "Edm.DateTimeOffset"
    for name in ("statecode", "statuscode", "prioritycode"):
        assert types[name] == "Edm.Int32"
    navigation = {n.get("Name"): n.get("Type") for n in email.findall(f"{EDM}NavigationProperty")}
    assert navigation == {
        "email_activity_parties": "Collection(mscrm.activityparty)",
        "email_activity_mime_attachment": "Collection(mscrm.activitymimeattachment)",
    }
    for name in ("activityparty", "activitymimeattachment", "systemuser", "queue", "template"):
        assert schema.find(f"{EDM}EntityType[@Name='{name}']") is not None
    user = schema.find(f"{EDM}EntityType[@Name='systemuser']")
    assert {p.get("Name") for p in user.findall(f"{EDM}Property")} >= {
        "systemuserid", "fullname", "internalemailaddress", "emailrouteraccessapproval",
    }  # fmt: skip


def test_metadata_declares_every_property_the_entity_sets_answer(owner):
    schema = _schema(owner)

    def declared(entity):
        node = schema.find(f"{EDM}EntityType[@Name='{entity}']")
        return {p.get("Name") for p in node.findall(f"{EDM}Property")}

    assert set(EMAIL_PROPERTIES) <= declared("email")
    assert set(ATTACHMENT_PROPERTIES) <= declared("activitymimeattachment")
    assert {"activitypartyid", "participationtypemask", "addressused", "_partyid_value"} <= (
        declared("activityparty")
    )


def test_metadata_lists_the_entity_sets_and_the_actions_with_their_documented_signatures(owner):
    schema = _schema(owner)
    container = schema.find(f"{EDM}EntityContainer")
    sets = {s.get("Name"): s.get("EntityType") for s in container.findall(f"{EDM}EntitySet")}
    assert sets == {
        "emails": "mscrm.email",
        "activitymimeattachments": "mscrm.activitymimeattachment",
        "systemusers": "mscrm.systemuser",
        "queues": "mscrm.queue",
        "organizations": "mscrm.organization",
        "templates": "mscrm.template",
    }
    actions = {a.get("Name"): a for a in schema.findall(f"{EDM}Action")}
    assert set(actions) == set(ACTIONS)

    def signature(name):
        action = actions[name]
        params = [(p.get("Name"), p.get("Type")) for p in action.findall(f"{EDM}Parameter")]
        returns = action.find(f"{EDM}ReturnType")
        return action.get("IsBound"), params, returns.get("Type") if returns is not None else None

    assert signature("SendEmail") == (
        "true",
        [("entity", "mscrm.email"), ("IssueSend", "Edm.Boolean"), ("TrackingToken", "Edm.String")],
        "mscrm.SendEmailResponse",
    )
    bound, params, returns = signature("SendBulkMail")
    assert (bound, returns) == ("false", None)
    assert params == [
        ("Sender", "mscrm.crmbaseentity"),
        ("TemplateId", "Edm.Guid"),
        ("RegardingType", "Edm.String"),
        ("RegardingId", "Edm.Guid"),
        ("Query", "mscrm.QueryBase"),
    ]
    bound, params, returns = signature("DeliverIncomingEmail")
    assert (bound, returns) == ("true", "mscrm.email")
    assert params[0] == ("entityset", "Collection(mscrm.email)")
    assert [name for name, _ in params[1:12]] == [
        "MessageId", "Subject", "From", "To", "Cc", "Bcc", "ReceivedOn", "SubmittedBy",
        "Importance", "Body", "Attachments",
    ]  # fmt: skip
    assert signature("InstantiateTemplate")[2] == "Collection(mscrm.crmbaseentity)"
    assert signature("GetTrackingTokenEmail")[2] == "mscrm.GetTrackingTokenEmailResponse"
    imports = {i.get("Name") for i in container.findall(f"{EDM}ActionImport")}
    assert imports == {name for name, (binding, _, _) in ACTIONS.items() if binding is None}
    fetch = schema.find(f"{EDM}ComplexType[@Name='FetchExpression']")
    assert fetch.get("BaseType") == "mscrm.QueryBase"
    assert fetch.find(f"{EDM}Property").get("Name") == "Query"


def test_the_service_document_lists_every_entity_set(owner):
    response = client_for(owner).get("/api/data/v9.2/")
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"] == "http://testserver/api/data/v9.2/$metadata"
    assert [s["name"] for s in body["value"]] == list(ENTITY_SETS)
    assert {s["kind"] for s in body["value"]} == {"EntitySet"}


def test_metadata_and_the_service_document_need_a_token_answered_in_odata_words(db):
    for path in ("/api/data/v9.2/$metadata", "/api/data/v9.2/"):
        response = client_for(None).get(path)
        assert response.status_code == 401
        assert set(response.json()) == {"error"}
        assert response.json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
def test_an_odata_v4_client_reads_the_metadata_and_lists_emails_and_systemusers(
    live_server, owner, approver, outsider
):
    mine = EmailFactory(sender_user=owner, subject="Your renewal", with_to="ann@example.com")
    EmailFactory(sender_user=outsider, subject="Not for Alice")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {Token.objects.create(user=owner).key}"
    service = ODataService(
        f"{live_server.url}/api/data/v9.2/",
        session=session,
        reflect_entities=True,
        quiet_progress=True,
    )
    assert set(service.entities) == set(ENTITY_SETS)
    assert {"SendBulkMail", "SendEmailFromTemplate"} <= set(service.actions)
    EmailEntity = service.entities["emails"]
    emails = list(service.query(EmailEntity))
    assert [(str(e.activityid), e.subject) for e in emails] == [(guid_of(mine.pk), "Your renewal")]
    assert emails[0].statuscode == 1 and emails[0].directioncode is True
    SystemUser = service.entities["systemusers"]
    users = {user.domainname: user for user in service.query(SystemUser)}
    assert set(users) == {"alice", "ada", "charlie"}
    assert str(users["alice"].systemuserid) == guid_of(owner.pk)
    assert users["alice"].internalemailaddress == "alice@staff.example.com"
    assert users["alice"].emailrouteraccessapproval == 1


def test_metadata_is_read_only(owner):
    response = client_for(owner).post("/api/data/v9.2/$metadata", {}, format="json")
    assert response.status_code == 405
    assert set(response.json()) == {"error"}


def test_every_entity_set_of_the_service_document_answers(owner):
    client = client_for(owner)
    for name in ENTITY_SETS:
        response = client.get(f"/api/data/v9.2/{name}")
        assert response.status_code == 200, name
        assert response.json()["@odata.context"].endswith(f"/$metadata#{name}")


def test_templates_are_listed_read_only_in_dataverse_names(owner):
    welcome = TemplateFactory(title="Welcome", record_type="contact", language="en")
    TemplateFactory(title="Global note", record_type="global", language="xx")
    client = client_for(owner)
    body = client.get("/api/data/v9.2/templates?$filter=templatetypecode eq 'contact'").json()
    assert body["value"] == [
        {
            "templateid": guid_of(welcome.pk),
            "title": "Welcome",
            "subject": welcome.subject,
            "body": welcome.body_html,
            "templatetypecode": "contact",
            "languagecode": 1033,
        }
    ]
    one = client.get(f"/api/data/v9.2/templates({guid_of(welcome.pk)})?$select=title").json()
    assert {k: v for k, v in one.items() if not k.startswith("@")} == {
        "templateid": guid_of(welcome.pk), "title": "Welcome",
    }  # fmt: skip
    assert client.patch(f"/api/data/v9.2/templates({guid_of(welcome.pk)})", {}).status_code == 405
    assert client.get("/api/data/v9.2/templates?$filter=subject eq 'x'").status_code == 400
