"""The Dynamics 365 ``emails`` entity set: create with parties, retrieve, update,
delete, list with OData query options, and every refusal in the OData error shape."""

from __future__ import annotations

import pytest

from activities.models import Email, EmailEvent, EmailParty, EmailStatus, PartyRole, Priority
from compat.dynamics.ids import guid_of
from crm.models import EmailApproval
from tests.api import client_for
from tests.factories import AccountFactory, ContactFactory, EmailFactory, QueueFactory

pytestmark = pytest.mark.django_db

ROOT = "/api/data/v9.2"


def odata_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"].startswith("0x")
    return body["error"]


def draft_body(contact, owner) -> dict:
    return {
        "subject": "Renewal",
        "description": "<p>Hello</p>",
        "prioritycode": 2,
        "regardingobjectid_contact@odata.bind": f"/contacts({guid_of(contact.pk)})",
        "email_activity_parties": [
            {
                "participationtypemask": 1,
                "partyid_systemuser@odata.bind": f"/systemusers({guid_of(owner.pk)})",
            },
            {
                "participationtypemask": 2,
                "partyid_contact@odata.bind": f"/contacts({guid_of(contact.pk)})",
            },
            {"participationtypemask": 3, "addressused": "cc@example.org"},
        ],
    }


def test_create_with_parties_answers_204_with_the_entity_id(owner):
    contact = ContactFactory(email="ann@customers.example.org")
    response = client_for(owner).post(f"{ROOT}/emails", draft_body(contact, owner), format="json")
    assert response.status_code == 204, response.content
    email = Email.objects.get()
    assert response["OData-EntityId"].endswith(f"{ROOT}/emails({guid_of(email.pk)})")
    assert response["OData-Version"] == "4.0"
    assert (email.subject, email.body_html, email.priority) == ("Renewal", "<p>Hello</p>", "high")
    assert email.status == EmailStatus.DRAFT and email.sender_user == owner
    assert email.regarding == contact
    parties = {(p.role, p.address, p.contact_id) for p in email.parties.all()}
    assert parties == {
        (PartyRole.FROM, owner.email, None),
        (PartyRole.TO, "ann@customers.example.org", contact.pk),
        (PartyRole.CC, "cc@example.org", None),
    }
    assert list(EmailEvent.objects.values_list("reason", flat=True)) == ["created"]


def test_create_with_return_representation_answers_the_entity(owner):
    contact = ContactFactory()
    response = client_for(owner).post(
        f"{ROOT}/emails",
        draft_body(contact, owner),
        format="json",
        HTTP_PREFER="return=representation",
    )
    assert response.status_code == 201
    body = response.json()
    email = Email.objects.get()
    assert body["activityid"] == guid_of(email.pk)
    assert (body["statecode"], body["statuscode"], body["prioritycode"]) == (0, 1, 2)
    assert body["directioncode"] is True
    assert body["_regardingobjectid_value"] == guid_of(contact.pk)
    assert body["_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"


def test_create_with_a_queue_sender_applies_our_sender_rules(owner, outsider, team_queue):
    body = {
        "subject": "From the team",
        "email_activity_parties": [
            {
                "participationtypemask": 1,
                "partyid_queue@odata.bind": f"/queues({guid_of(team_queue.pk)})",
            },
            {"participationtypemask": 2, "addressused": "ann@example.org"},
        ],
    }
    assert client_for(owner).post(f"{ROOT}/emails", body, format="json").status_code == 204
    assert Email.objects.get().sender_queue == team_queue
    error = odata_error(client_for(outsider).post(f"{ROOT}/emails", body, format="json"), 403)
    assert "not a member of the queue Support" in error["message"]
    assert Email.objects.count() == 1


def test_a_recipient_without_an_address_is_a_400_naming_it(owner):
    body = {
        "subject": "x",
        "email_activity_parties": [
            {"participationtypemask": 2, "addressused": "ann@example.org"},
            {"participationtypemask": 2},
        ],
    }
    error = odata_error(client_for(owner).post(f"{ROOT}/emails", body, format="json"), 400)
    assert error["message"].startswith("email_activity_parties[1] (to): the recipient has no")
    contact = ContactFactory(email="")
    body["email_activity_parties"][1] = {
        "participationtypemask": 3,
        "partyid_contact@odata.bind": f"/contacts({guid_of(contact.pk)})",
    }
    error = odata_error(client_for(owner).post(f"{ROOT}/emails", body, format="json"), 400)
    assert "has no email address" in error["message"]
    assert not Email.objects.exists()


def test_an_invalid_address_is_refused_in_our_words(owner):
    body = {
        "email_activity_parties": [{"participationtypemask": 2, "addressused": "not an address"}]
    }
    error = odata_error(client_for(owner).post(f"{ROOT}/emails", body, format="json"), 400)
    assert "not an address" in error["message"]
    assert not Email.objects.exists()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"subjet": "typo"}, "Could not find a property named 'subjet'"),
        ({"subject": 5}, "subject must be a string"),
        ({"prioritycode": "high"}, "prioritycode must be 0"),
        ({"prioritycode": {}}, "prioritycode must be 0"),
        ({"statecode": "open"}, "statecode must be 0, 1 or 2"),
        ({"email_activity_parties": {"a": 1}}, "must be an array"),
        ({"email_activity_parties": [{"participationtypemask": 9}]}, "participationtypemask"),
        ({"email_activity_parties": [5]}, "must be an object"),
        ({"regardingobjectid_contact@odata.bind": "contacts(nope)"}, "is not a record id"),
        ({"regardingobjectid_contact@odata.bind": 7}, "is not a record reference"),
        ({"statuscode": 3}, "created as a draft"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_malformed_bodies_are_400s_in_the_odata_shape(owner, body, needle):
    response = client_for(owner).post(f"{ROOT}/emails", body, format="json")
    assert response.status_code in (400, 404)
    assert needle in response.json()["error"]["message"]
    assert not Email.objects.exists()


def test_malformed_json_and_deep_json_are_400s(owner):
    client = client_for(owner)
    error = odata_error(
        client.post(f"{ROOT}/emails", "{not json", content_type="application/json"), 400
    )
    assert error["code"] == "0x80048d19"
    deep = "[" * 5000 + "]" * 5000
    odata_error(client.post(f"{ROOT}/emails", deep, content_type="application/json"), 400)


def test_retrieve_select_and_expand(owner):
    email = EmailFactory(sender_user=owner, subject="Hi", with_to="ann@example.org")
    client = client_for(owner)
    body = client.get(f"{ROOT}/emails({guid_of(email.pk)})?$select=subject,statuscode").json()
    assert {k for k in body if not k.startswith("@")} == {"activityid", "subject", "statuscode"}
    assert body["@odata.context"].endswith("$metadata#emails/$entity")
    body = client.get(f"{ROOT}/emails({guid_of(email.pk)})?$expand=email_activity_parties").json()
    assert [
        (p["participationtypemask"], p["addressused"]) for p in body["email_activity_parties"]
    ] == [(2, "ann@example.org")]
    odata_error(client.get(f"{ROOT}/emails({guid_of(email.pk)})?$select=nope"), 400)
    odata_error(client.get(f"{ROOT}/emails({guid_of(email.pk)})?$expand=regardingobjectid"), 400)


def test_unknown_bad_and_invisible_guids_are_404s(owner, outsider):
    email = EmailFactory(sender_user=owner)
    error = odata_error(client_for(owner).get(f"{ROOT}/emails(not-a-guid)"), 404)
    assert error["code"] == "0x80040217" and "not-a-guid" in error["message"]
    odata_error(client_for(owner).get(f"{ROOT}/emails({guid_of(email.pk + 100)})"), 404)
    error = odata_error(client_for(outsider).get(f"{ROOT}/emails({guid_of(email.pk)})"), 404)
    assert "Does Not Exist" in error["message"]
    odata_error(client_for(outsider).delete(f"{ROOT}/emails({guid_of(email.pk)})"), 404)
    assert Email.objects.filter(pk=email.pk).exists()


def test_an_unknown_segment_and_no_token_answer_in_the_odata_shape(owner):
    error = odata_error(client_for(owner).get(f"{ROOT}/Email"), 404)
    assert error == {"code": "0x8006088a", "message": "Resource not found for the segment 'Email'."}
    odata_error(client_for(None).get(f"{ROOT}/emails"), 401)
    odata_error(client_for(owner).put(f"{ROOT}/emails", {}, format="json"), 405)


def test_update_changes_a_draft_and_replaces_its_recipients(owner):
    email = EmailFactory(sender_user=owner, with_to="old@example.org")
    client = client_for(owner)
    response = client.patch(
        f"{ROOT}/emails({guid_of(email.pk)})",
        {
            "subject": "New subject",
            "prioritycode": 0,
            "email_activity_parties": [
                {"participationtypemask": 4, "addressused": "b@example.org"}
            ],
        },
        format="json",
    )
    assert response.status_code == 204, response.content
    email.refresh_from_db()
    assert (email.subject, email.priority) == ("New subject", Priority.LOW)
    assert [(p.role, p.address) for p in email.parties.exclude(role=PartyRole.FROM)] == [
        (PartyRole.BCC, "b@example.org")
    ]


def test_update_with_a_stale_if_match_is_a_412(owner):
    email = EmailFactory(sender_user=owner, subject="Before")
    client = client_for(owner)
    etag = client.get(f"{ROOT}/emails({guid_of(email.pk)})").json()["@odata.etag"]
    ok = client.patch(
        f"{ROOT}/emails({guid_of(email.pk)})", {"subject": "A"}, format="json", HTTP_IF_MATCH=etag
    )
    assert ok.status_code == 204
    stale = client.patch(
        f"{ROOT}/emails({guid_of(email.pk)})", {"subject": "B"}, format="json", HTTP_IF_MATCH=etag
    )
    odata_error(stale, 412)
    email.refresh_from_db()
    assert email.subject == "A"


def test_update_of_a_sent_email_is_a_409_naming_the_status(owner):
    email = EmailFactory(sender_user=owner, status=EmailStatus.SENT, subject="Done")
    response = client_for(owner).patch(
        f"{ROOT}/emails({guid_of(email.pk)})", {"subject": "Changed"}, format="json"
    )
    error = odata_error(response, 409)
    assert "status is sent" in error["message"]
    email.refresh_from_db()
    assert email.subject == "Done"


def test_delete_removes_the_email(owner):
    email = EmailFactory(sender_user=owner)
    assert client_for(owner).delete(f"{ROOT}/emails({guid_of(email.pk)})").status_code == 204
    assert not Email.objects.exists()


def test_statuscode_5_cancels_a_draft(owner):
    email = EmailFactory(sender_user=owner)
    response = client_for(owner).patch(
        f"{ROOT}/emails({guid_of(email.pk)})", {"statecode": 2, "statuscode": 5}, format="json"
    )
    assert response.status_code == 204, response.content
    email.refresh_from_db()
    assert email.status == EmailStatus.CANCELED


# --- lists ------------------------------------------------------------------------------


def test_list_shows_only_what_api_v1_shows(owner, outsider, staff):
    mine = EmailFactory(sender_user=owner)
    EmailFactory(sender_user=outsider)
    ids = [e["activityid"] for e in client_for(owner).get(f"{ROOT}/emails").json()["value"]]
    assert ids == [guid_of(mine.pk)]
    assert len(client_for(staff).get(f"{ROOT}/emails").json()["value"]) == 2


def test_filter_orderby_top_and_count(owner):
    contact = ContactFactory()
    a = EmailFactory(sender_user=owner, subject="a", status=EmailStatus.SENT)
    b = EmailFactory(sender_user=owner, subject="b", priority=Priority.HIGH)
    c = EmailFactory(sender_user=owner, subject="c", regarding=contact)
    client = client_for(owner)

    def ids(query: str) -> list[str]:
        response = client.get(f"{ROOT}/emails?{query}")
        assert response.status_code == 200, response.content
        return [e["activityid"] for e in response.json()["value"]]

    assert ids("$filter=statuscode eq 3") == [guid_of(a.pk)]
    assert ids("$filter=statecode eq 0 and prioritycode eq 2") == [guid_of(b.pk)]
    assert ids("$filter=subject eq 'a' or subject eq 'c'&$orderby=subject desc") == [
        guid_of(c.pk),
        guid_of(a.pk),
    ]
    assert ids("$filter=statuscode ne 3&$orderby=subject") == [guid_of(b.pk), guid_of(c.pk)]
    assert ids(f"$filter=_regardingobjectid_value eq {guid_of(contact.pk)}") == [guid_of(c.pk)]
    assert ids(
        "$filter=directioncode eq true and createdon gt 2000-01-01T00:00:00Z&$top=1&$orderby=subject"
    ) == [guid_of(a.pk)]
    body = client.get(f"{ROOT}/emails?$count=true&$filter=not (statuscode eq 3)").json()
    assert body["@odata.count"] == 2


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("$filter=ownerid eq 'x'", "Could not find a property named 'ownerid'"),
        ("$filter=contains(subject,'x')", "contains() is not supported"),
        ("$filter=subject eq 5", "compares with a string"),
        ("$filter=statuscode gt 1", "supports only eq and ne"),
        ("$filter=subject eq", "could not be read"),
        ("$filter=createdon gt 9999-12-31T23:59:59-15:00", "within the years"),
        ("$orderby=ownerid", "Could not find a property named 'ownerid'"),
        ("$orderby=subject sideways", "neither asc nor desc"),
        ("$top=-1", "$top must be a whole number"),
        ("$skip=5", "$skip is not supported"),
        ("$filter=" + "(" * 3000 + "statuscode eq 1" + ")" * 3000, "longer than"),
    ],
)
def test_unsupported_query_parts_are_400s_naming_them(owner, query, needle):
    error = odata_error(client_for(owner).get(f"{ROOT}/emails?{query}"), 400)
    assert needle in error["message"]


def test_paging_follows_the_next_link_with_the_preferred_page_size(owner):
    created = [EmailFactory(sender_user=owner, subject=f"s{i}") for i in range(5)]
    client = client_for(owner)
    url = f"{ROOT}/emails?$orderby=subject&$select=subject"
    seen = []
    pages = 0
    while url:
        response = client.get(url, HTTP_PREFER="odata.maxpagesize=2")
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [e["subject"] for e in body["value"]]
        url = body.get("@odata.nextLink")
        pages += 1
    assert seen == [e.subject for e in created] and pages == 3


def test_regarding_an_account_and_a_sender_record_that_does_not_exist(owner):
    account = AccountFactory()
    client = client_for(owner)
    body = {"regardingobjectid_account@odata.bind": f"/accounts({guid_of(account.pk)})"}
    assert client.post(f"{ROOT}/emails", body, format="json").status_code == 204
    assert Email.objects.get().regarding == account
    body = {
        "email_activity_parties": [
            {
                "participationtypemask": 1,
                "partyid_queue@odata.bind": f"/queues({guid_of(999_999)})",
            }
        ]
    }
    error = odata_error(client.post(f"{ROOT}/emails", body, format="json"), 400)
    assert "there is no queues record" in error["message"]
    assert Email.objects.count() == 1


def test_an_unapproved_queue_sender_is_stored_but_not_sendable(owner):
    queue = QueueFactory(
        name="Sales",
        email="sales@example.com",
        members=[owner],
        email_router_access_approval=EmailApproval.PENDING,
    )
    body = {
        "email_activity_parties": [
            {
                "participationtypemask": 1,
                "partyid_queue@odata.bind": f"/queues({guid_of(queue.pk)})",
            },
            {"participationtypemask": 2, "addressused": "ann@example.org"},
        ]
    }
    client = client_for(owner)
    assert client.post(f"{ROOT}/emails", body, format="json").status_code == 204
    email = Email.objects.get()
    response = client.post(
        f"{ROOT}/emails({guid_of(email.pk)})/Microsoft.Dynamics.CRM.SendEmail",
        {"IssueSend": True},
        format="json",
    )
    error = odata_error(response, 400)
    assert "sender address is not approved" in error["message"]
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT
    assert not EmailParty.objects.filter(role=PartyRole.TO).exclude(address="ann@example.org")


def test_nul_characters_out_of_range_times_and_bad_guids_in_filter_are_400s(owner):
    client = client_for(owner)
    body = {"description": "a\x00b"}
    assert "NUL" in odata_error(client.post(f"{ROOT}/emails", body, format="json"), 400)["message"]
    body = {"scheduledstart": "9999-12-31T23:59:59-15:00"}
    error = odata_error(client.post(f"{ROOT}/emails", body, format="json"), 400)
    assert "outside the years" in error["message"]
    assert not Email.objects.exists()
    odata_error(client.get(f"{ROOT}/emails?$filter=subject eq 'a\x00'"), 400)
    odata_error(client.get(f"{ROOT}/emails?$filter=activityid eq 'nope'"), 400)
    unknown = "ffffffff-ffff-ffff-ffff-ffffffffffff"
    assert client.get(f"{ROOT}/emails?$filter=activityid eq {unknown}").json()["value"] == []


def test_a_body_over_the_upload_limit_is_a_413(owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {"subject": "x" * 2000}
    error = odata_error(client_for(owner).post(f"{ROOT}/emails", body, format="json"), 413)
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in error["message"]
    assert not Email.objects.exists()


def test_references_may_be_absolute_urls_and_guids_may_have_braces(owner):
    contact = ContactFactory()
    client = client_for(owner)
    body = {
        "regardingobjectid_contact@odata.bind": (
            f"https://crm.example.com/api/data/v9.2/contacts({guid_of(contact.pk)})"
        )
    }
    assert client.post(f"{ROOT}/emails", body, format="json").status_code == 204
    email = Email.objects.get()
    assert email.regarding == contact
    response = client.get(f"{ROOT}/emails({{{guid_of(email.pk)}}})")
    assert response.json()["activityid"] == guid_of(email.pk)
    odata_error(client.get(f"{ROOT}/emails", HTTP_PREFER="odata.maxpagesize=0"), 400)
    wrong_set = {"regardingobjectid_contact@odata.bind": f"/accounts({guid_of(contact.pk)})"}
    error = odata_error(client.post(f"{ROOT}/emails", wrong_set, format="json"), 400)
    assert "expected a reference to contacts" in error["message"]


def test_receipt_requests_are_read_written_and_filtered(owner):
    client = client_for(owner)
    body = {"subject": "Please confirm", "readreceiptrequested": True}
    created = client.post(
        f"{ROOT}/emails", body, format="json", HTTP_PREFER="return=representation"
    ).json()
    email = Email.objects.get()
    assert (email.request_read_receipt, email.request_delivery_receipt) == (True, False)
    assert (created["readreceiptrequested"], created["deliveryreceiptrequested"]) == (True, False)
    url = f"{ROOT}/emails({guid_of(email.pk)})"
    assert client.patch(url, {"deliveryreceiptrequested": True}, format="json").status_code == 204
    email.refresh_from_db()
    assert email.request_delivery_receipt is True
    listed = client.get(f"{ROOT}/emails?$filter=deliveryreceiptrequested eq true").json()
    assert [e["activityid"] for e in listed["value"]] == [guid_of(email.pk)]
    odata_error(client.patch(url, {"readreceiptrequested": "yes"}, format="json"), 400)


def test_reply_to_parties_are_not_shown_and_survive_a_recipient_update(owner):
    email = EmailFactory(sender_user=owner, with_to="ann@example.org")
    EmailParty.objects.create(email=email, role=PartyRole.REPLY_TO, address="replies@example.com")
    client = client_for(owner)
    url = f"{ROOT}/emails({guid_of(email.pk)})"
    body = client.get(f"{url}?$expand=email_activity_parties").json()
    assert [p["addressused"] for p in body["email_activity_parties"]] == ["ann@example.org"]
    parties = [{"participationtypemask": 2, "addressused": "bo@example.org"}]
    assert client.patch(url, {"email_activity_parties": parties}, format="json").status_code == 204
    assert set(email.parties.values_list("role", "address")) == {
        (PartyRole.TO, "bo@example.org"),
        (PartyRole.REPLY_TO, "replies@example.com"),
    }
