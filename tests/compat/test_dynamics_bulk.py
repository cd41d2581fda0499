"""SendBulkMail: our bulk job over a FetchXML or $filter query on contacts."""

from __future__ import annotations

import pytest
import requests
from rest_framework.authtoken.models import Token

from activities.models import BulkSend, Email, EmailStatus
from compat.dynamics.ids import guid_of
from crm.models import Contact
from tests.api import client_for
from tests.factories import AccountFactory, ContactFactory, TemplateFactory

pytestmark = pytest.mark.django_db

URL = "/api/data/v9.2/SendBulkMail"


@pytest.fixture
def northwind(db):
    account = AccountFactory(name="Northwind Traders")
    for name in ("Ann", "Ben"):
        ContactFactory(account=account, first_name=name, email=f"{name.lower()}@northwind.example")
    ContactFactory(
        account=account, first_name="Cleo", city="Bergen", email="cleo@northwind.example"
    )
    ContactFactory(
        account=AccountFactory(name="Contoso"), first_name="Dan", email="dan@contoso.example"
    )
    return account


@pytest.fixture
def welcome(db):
    return TemplateFactory(title="Welcome", subject="Welcome, {{ contact.first_name }}")


def fetch(*conditions: str, filter_type: str = "and") -> dict:
    body = "".join(conditions)
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.FetchExpression",
        "Query": (
            '<fetch version="1.0" output-format="xml-platform" mapping="logical" distinct="false">'
            '<entity name="contact"><attribute name="fullname"/><attribute name="emailaddress1"/>'
            f'<order attribute="fullname" descending="false"/><filter type="{filter_type}">{body}'
            "</filter></entity></fetch>"
        ),
    }


def condition(attribute: str, operator: str, value: str) -> str:
    return f'<condition attribute="{attribute}" operator="{operator}" value="{value}"/>'


def params(welcome, sender_queue, query, **more) -> dict:
    return {
        "Sender": {
            "@odata.type": "Microsoft.Dynamics.CRM.queue",
            "queueid": guid_of(sender_queue.pk),
        },
        "TemplateId": guid_of(welcome.pk),
        "RegardingType": "account",
        "RegardingId": "00000000-0000-0000-0000-000000000000",
        "Query": query,
        **more,
    }


def test_a_fetchxml_query_starts_a_bulk_job_over_the_contacts_it_selects(
    owner, team_queue, northwind, welcome
):
    query = fetch(
        condition("parentcustomerid", "eq", "{" + guid_of(northwind.pk).upper() + "}")[:-2]
        + ' uiname="Northwind Traders" uitype="account"/>',
        condition("address1_city", "eq", "oslo"),
        condition("statecode", "eq", "0"),
        condition("createdon", "on-or-after", "2020-01-01"),
    )
    response = client_for(owner).post(URL, params(welcome, team_queue, query), format="json")
    assert response.status_code == 204, response.content
    job = BulkSend.objects.get()
    assert response["Location"].endswith(f"/api/v1/bulk-sends/{job.pk}/")
    assert job.query == {
        "account": northwind.pk, "city": "oslo", "created_after": "2020-01-01T00:00:00+00:00",
    }  # fmt: skip
    assert (job.template, job.sender_queue, job.created_by) == (welcome, team_queue, owner)
    assert job.regarding_id is None
    assert job.total == 2  # Ann and Ben; Cleo lives in Bergen, Dan is at Contoso


def test_an_odata_filter_string_is_the_same_query(owner, team_queue, northwind, welcome):
    query = f"_parentcustomerid_value eq {guid_of(northwind.pk)} and address1_city eq 'Bergen'"
    response = client_for(owner).post(
        URL,
        {
            **params(welcome, team_queue, query),
            "RegardingType": "account",
            "RegardingId": guid_of(northwind.pk),
        },
        format="json",
    )
    assert response.status_code == 204, response.content
    job = BulkSend.objects.get()
    assert job.query == {"account": northwind.pk, "city": "Bergen"}
    assert (job.regarding_type.model, job.regarding_id) == ("account", northwind.pk)
    assert job.total == 1


def test_without_a_sender_the_acting_user_sends(owner, northwind, welcome):
    response = client_for(owner).post(
        URL, {"TemplateId": guid_of(welcome.pk), "Query": "address1_city eq 'Oslo'"}, format="json"
    )
    assert response.status_code == 204, response.content
    assert BulkSend.objects.get().sender_user == owner


@pytest.mark.parametrize(
    ("query", "named"),
    [
        (fetch(condition("address1_city", "eq", "Oslo"), filter_type="or"), "type='or'"),
        (fetch(condition("lastname", "eq", "Lee")), "'lastname'"),
        (fetch(condition("address1_city", "like", "Os%")), "'like'"),
        (fetch(condition("createdon", "gt", "2020-01-01")), "'gt'"),
        (
            {
                "@odata.type": "Microsoft.Dynamics.CRM.FetchExpression",
                "Query": '<fetch><entity name="contact"><link-entity name="account"/></entity></fetch>',
            },
            "<link-entity>",
        ),
        (
            {
                "@odata.type": "Microsoft.Dynamics.CRM.FetchExpression",
                "Query": '<fetch top="10"><entity name="contact"/></fetch>',
            },
            "'top'",
        ),
        (
            {
                "@odata.type": "Microsoft.Dynamics.CRM.FetchExpression",
                "Query": '<fetch><entity name="account"/></fetch>',
            },
            "bulk mail goes to contacts",
        ),
        (
            {
                "@odata.type": "Microsoft.Dynamics.CRM.FetchExpression",
                "Query": '<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x "y">]><fetch>&x;</fetch>',
            },
            "DTD, an entity",
        ),
        (
            {"@odata.type": "Microsoft.Dynamics.CRM.FetchExpression", "Query": "<fetch>"},
            "well-formed",
        ),
        (
            {"@odata.type": "Microsoft.Dynamics.CRM.QueryExpression", "EntityName": "contact"},
            "QueryExpression",
        ),
        ("address1_city eq 'Oslo' or address1_city eq 'Bergen'", "'or'"),
        ("contains(fullname,'Lee')", "contains() is not supported"),
        ("address1_city ne 'Oslo'", "'ne'"),
        ("createdon ge 2026-02-30", "createdon"),
        ("_parentcustomerid_value eq 'not-a-guid'", "not an account id"),
        ("_parentcustomerid_value eq ffffffff-ffff-ffff-ffff-ffffffffffff", "not an account id"),
        ("address1_city eq", "could not be read"),
        ("not (address1_city eq 'Oslo')", "'not' is not supported"),
        (42, "FetchExpression object or a $filter string"),
    ],
)
def test_a_query_beyond_the_bulk_jobs_filters_is_a_400_naming_the_part(
    owner, team_queue, welcome, query, named
):
    response = client_for(owner).post(URL, params(welcome, team_queue, query), format="json")
    assert response.status_code == 400, response.content
    assert named in response.json()["error"]["message"]
    assert not BulkSend.objects.exists()


@pytest.mark.parametrize(
    ("change", "status", "named"),
    [
        ({"TemplateId": "nope"}, 400, "TemplateId"),
        ({"TemplateId": 7}, 400, "TemplateId"),
        ({"TemplateId": guid_of(10**6)}, 404, "template"),
        (
            {"Sender": {"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": guid_of(1)}},
            400,
            "Sender",
        ),
        ({"Sender": "alice"}, 400, "Sender"),
        ({"RegardingType": "opportunity", "RegardingId": guid_of(1)}, 400, "RegardingType"),
        ({"RegardingId": guid_of(10**6)}, 404, "RegardingId"),
        ({"Recipients": []}, 400, "'Recipients'"),
    ],
)
def test_a_malformed_parameter_is_refused_naming_it(
    owner, team_queue, northwind, welcome, change, status, named
):
    body = {**params(welcome, team_queue, "address1_city eq 'Oslo'"), **change}
    response = client_for(owner).post(URL, body, format="json")
    assert response.status_code == status, response.content
    assert named in response.json()["error"]["message"]
    assert not BulkSend.objects.exists()


def test_an_outsider_may_not_send_as_the_teams_queue(outsider, team_queue, northwind, welcome):
    response = client_for(outsider).post(
        URL, params(welcome, team_queue, "address1_city eq 'Oslo'"), format="json"
    )
    assert response.status_code == 403
    assert "not a member of the queue Support" in response.json()["error"]["message"]
    assert not BulkSend.objects.exists()


def test_a_sender_whose_address_is_not_approved_is_refused_as_in_api_v1(
    teammate, northwind, welcome, org
):
    teammate.email_router_access_approval = "pending_approval"
    teammate.save()
    response = client_for(teammate).post(
        URL,
        {
            "TemplateId": guid_of(welcome.pk),
            "Sender@odata.bind": f"/systemusers({guid_of(teammate.pk)})",
            "Query": "address1_city eq 'Oslo'",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "approved" in response.json()["error"]["message"]
    assert not BulkSend.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_sendbulkmail_over_http_ends_as_mail_at_the_smtp_server(
    live_server, smtp_settings, eager_celery, owner, team_queue, northwind, welcome
):
    token = Token.objects.create(user=owner).key
    response = requests.post(
        f"{live_server.url}{URL}",
        json=params(
            welcome, team_queue, fetch(condition("parentcustomerid", "eq", guid_of(northwind.pk)))
        ),
        headers={"Authorization": f"Bearer {token}", "OData-Version": "4.0"},
        timeout=30,
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    sent = sorted(m.rcpt_tos[0] for m in smtp_settings.messages)
    assert sent == ["ann@northwind.example", "ben@northwind.example", "cleo@northwind.example"]
    subjects = {m.rcpt_tos[0]: m.message["Subject"] for m in smtp_settings.messages}
    assert subjects["ann@northwind.example"].startswith("Welcome, Ann")
    assert set(Email.objects.values_list("status", flat=True)) == {EmailStatus.SENT}
    assert Email.objects.count() == 3 and Contact.objects.count() == 4


def test_a_huge_or_deeply_nested_fetchxml_is_refused(owner, team_queue, welcome):
    client = client_for(owner)
    huge = fetch(condition("address1_city", "eq", "x" * 30_000))
    deep = {
        "@odata.type": "Microsoft.Dynamics.CRM.FetchExpression",
        "Query": '<fetch><entity name="contact">' + "<filter>" * 50 + "</filter>" * 50
        + "</entity></fetch>",
    }  # fmt: skip
    for query, named in ((huge, "longer than"), (deep, "nested deeper")):
        response = client.post(URL, params(welcome, team_queue, query), format="json")
        assert response.status_code == 400
        assert named in response.json()["error"]["message"]
    assert not BulkSend.objects.exists()
