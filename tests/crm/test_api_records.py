"""The CRM record endpoints: users, queues, the organisation, accounts and contacts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from activities.models import EmailParty
from activities.services.emails import email_send
from crm.models import Account, Contact, EmailApproval, Organization, Queue, Tag, User
from tests.api import client_for, count_queries
from tests.factories import (
    AccountFactory,
    ContactFactory,
    EmailFactory,
    QueueFactory,
    TagFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

APPROVE = "crm.approve_email_address"


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


# --- Users -----------------------------------------------------------------------


def test_any_signed_in_user_lists_users_with_their_address_approval(owner):
    pending = UserFactory(
        username="bob",
        first_name="Bob",
        last_name="Berg",
        email="bob@example.com",
        email_router_access_approval=EmailApproval.PENDING,
        outgoing_delivery="external",
    )
    answer = client_for(owner).get(f"/api/v1/users/{pending.pk}/")
    assert answer.status_code == 200
    assert answer.json() == {
        "id": pending.pk,
        "username": "bob",
        "email": "bob@example.com",
        "full_name": "Bob Berg",
        "email_router_access_approval": "pending_approval",
        "outgoing_delivery": "external",
    }
    assert [u["username"] for u in results(client_for(owner).get("/api/v1/users/"))] == [
        "alice",
        "bob",
    ]


def test_users_filter_by_approval_and_delivery_and_search(owner):
    UserFactory(username="bob", email_router_access_approval=EmailApproval.PENDING)
    UserFactory(username="carl", outgoing_delivery="external", email="carl@relay.example.com")
    client = client_for(owner)
    pending = results(client.get("/api/v1/users/?email_router_access_approval=pending_approval"))
    assert [u["username"] for u in pending] == ["bob"]
    external = results(client.get("/api/v1/users/?outgoing_delivery=external"))
    assert [u["username"] for u in external] == ["carl"]
    assert [u["username"] for u in results(client.get("/api/v1/users/?search=relay"))] == ["carl"]


@pytest.mark.parametrize(
    "query", ["email_router_access_approval=maybe", "outgoing_delivery=pigeon", "is_active=perhaps"]
)
def test_users_refuse_an_invalid_filter_value_naming_it(owner, query):
    answer = client_for(owner).get(f"/api/v1/users/?{query}")
    assert answer.status_code == 400
    assert query.split("=")[0] in answer.json()


def test_users_cannot_be_created_or_changed_through_the_api(staff):
    client = client_for(staff)
    assert client.post("/api/v1/users/", {"username": "x"}).status_code == 405
    assert client.patch(f"/api/v1/users/{staff.pk}/", {"email": "x@example.com"}).status_code == 405
    assert client.delete(f"/api/v1/users/{staff.pk}/").status_code == 405
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    ("action", "expected"),
    [("approve", EmailApproval.APPROVED), ("reject", EmailApproval.REJECTED)],
)
def test_an_approver_approves_or_rejects_a_user_address(approver, action, expected):
    bob = UserFactory(username="bob", email_router_access_approval=EmailApproval.PENDING)
    answer = client_for(approver).post(f"/api/v1/users/{bob.pk}/{action}/")
    assert answer.status_code == 200
    assert answer.json()["id"] == bob.pk
    assert answer.json()["email_router_access_approval"] == expected
    bob.refresh_from_db()
    assert bob.email_router_access_approval == expected


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_approving_a_user_needs_the_permission_even_for_staff_and_the_user_himself(
    staff, outsider, action
):
    bob = UserFactory(username="bob", email_router_access_approval=EmailApproval.PENDING)
    for actor in (bob, staff, outsider):
        answer = client_for(actor).post(f"/api/v1/users/{bob.pk}/{action}/")
        assert answer.status_code == 403
        assert APPROVE in answer.json()["detail"]
    bob.refresh_from_db()
    assert bob.email_router_access_approval == EmailApproval.PENDING
    assert client_for().post(f"/api/v1/users/{bob.pk}/{action}/").status_code == 401


def test_approving_a_user_without_address_is_a_400_naming_the_cause(approver):
    nobody = UserFactory(username="nobody", email="", email_router_access_approval="")
    answer = client_for(approver).post(f"/api/v1/users/{nobody.pk}/approve/")
    assert answer.status_code == 400
    assert answer.json()["code"] == "no_address"
    nobody.refresh_from_db()
    assert nobody.email_router_access_approval == ""


def test_approving_an_unknown_user_is_a_404(approver):
    assert client_for(approver).post("/api/v1/users/999999/approve/").status_code == 404


# --- Queues ----------------------------------------------------------------------


def test_staff_create_a_queue_whose_address_starts_pending(staff, owner):
    answer = client_for(staff).post(
        "/api/v1/queues/",
        {
            "name": "Support",
            "email": "support@example.com",
            "outgoing_delivery": "external",
            "send_rate_per_minute": 30,
            "members": [owner.pk, staff.pk],
            "email_router_access_approval": "approved",  # read-only: ignored
        },
    )
    assert answer.status_code == 201, answer.content
    body = answer.json()
    queue = Queue.objects.get()
    assert body == {
        "id": queue.pk,
        "name": "Support",
        "email": "support@example.com",
        "email_router_access_approval": "pending_approval",
        "outgoing_delivery": "external",
        "send_rate_per_minute": 30,
        "members": sorted([owner.pk, staff.pk]),
        "created_at": body["created_at"],
    }
    assert queue.email_router_access_approval == EmailApproval.PENDING
    assert queue.send_rate_per_minute == 30
    assert set(queue.members.all()) == {owner, staff}


def test_creating_a_queue_needs_staff(owner, approver):
    for actor in (owner, approver):
        answer = client_for(actor).post(
            "/api/v1/queues/", {"name": "Support", "email": "support@example.com"}
        )
        assert answer.status_code == 403
        assert "is_staff" in answer.json()["detail"]
    assert not Queue.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "desk@example.com"}, "name"),
        ({"name": "Desk"}, "email"),
        ({"name": "Desk", "email": "not an address"}, "email"),
        ({"name": "Desk", "email": "desk@example.com\r\nBcc: x@example.com"}, "email"),
        ({"name": "Taken", "email": "desk@example.com"}, "name"),
        ({"name": "Desk", "email": "taken@example.com"}, "email"),
        ({"name": "Desk", "email": "desk@example.com", "members": [999999]}, "members"),
        ({"name": "Desk", "email": "desk@example.com", "members": "everyone"}, "members"),
        ({"name": "Desk", "email": "desk@example.com", "outgoing_delivery": "pigeon"}, None),
        ({"name": "x" * 201, "email": "desk@example.com"}, "name"),
        ({"name": 17, "email": ["desk@example.com"]}, "email"),
    ],
)
def test_invalid_queue_input_is_a_400_naming_the_field(staff, body, field):
    QueueFactory(name="Taken", email="taken@example.com")
    answer = client_for(staff).post("/api/v1/queues/", body)
    assert answer.status_code == 400
    assert (field or "outgoing_delivery") in answer.json()
    assert Queue.objects.count() == 1


def test_changing_a_queue_address_resets_its_approval_to_pending(staff):
    queue = QueueFactory(email="old@example.com", email_router_access_approval="approved")
    answer = client_for(staff).patch(f"/api/v1/queues/{queue.pk}/", {"email": "new@example.com"})
    assert answer.status_code == 200
    assert answer.json()["email_router_access_approval"] == "pending_approval"
    queue.refresh_from_db()
    assert (queue.email, queue.email_router_access_approval) == (
        "new@example.com",
        "pending_approval",
    )


def test_renaming_a_queue_or_changing_members_keeps_its_approval(staff, owner):
    queue = QueueFactory(name="Desk", members=[staff], email_router_access_approval="approved")
    answer = client_for(staff).patch(
        f"/api/v1/queues/{queue.pk}/",
        {
            "name": "Front desk",
            "members": [owner.pk],
            "email_router_access_approval": "rejected",
        },
    )
    assert answer.status_code == 200
    assert answer.json()["members"] == [owner.pk]
    queue.refresh_from_db()
    assert queue.name == "Front desk"
    assert queue.email_router_access_approval == EmailApproval.APPROVED
    assert list(queue.members.all()) == [owner]


def test_emptying_queue_members_with_an_empty_list(staff, owner):
    queue = QueueFactory(members=[staff, owner])
    answer = client_for(staff).patch(f"/api/v1/queues/{queue.pk}/", {"members": []})
    assert answer.status_code == 200
    assert answer.json()["members"] == []
    assert not queue.members.exists()


def test_a_member_who_is_not_staff_cannot_change_or_delete_the_queue(owner):
    queue = QueueFactory(name="Desk", members=[owner])
    client = client_for(owner)
    answer = client.patch(f"/api/v1/queues/{queue.pk}/", {"name": "Mine"})
    assert answer.status_code == 403
    assert "is_staff" in answer.json()["detail"]
    assert client.delete(f"/api/v1/queues/{queue.pk}/").status_code == 403
    queue.refresh_from_db()
    assert queue.name == "Desk"
    assert client.get(f"/api/v1/queues/{queue.pk}/").status_code == 200


def test_staff_delete_a_queue_without_emails(staff):
    queue = QueueFactory(members=[staff])
    assert client_for(staff).delete(f"/api/v1/queues/{queue.pk}/").status_code == 204
    assert not Queue.objects.exists()
    assert User.objects.filter(pk=staff.pk).exists()


def test_deleting_a_queue_that_sent_emails_is_a_409_and_keeps_everything(staff):
    queue = QueueFactory(name="Desk")
    EmailFactory(sender_user=None, sender_queue=queue)
    EmailFactory(sender_user=None, sender_queue=queue)
    answer = client_for(staff).delete(f"/api/v1/queues/{queue.pk}/")
    assert answer.status_code == 409
    assert answer.json()["code"] == "protected"
    assert "2 emails" in answer.json()["detail"]
    assert Queue.objects.filter(pk=queue.pk).exists()
    assert queue.emails.count() == 2


@pytest.mark.parametrize(
    ("action", "expected"),
    [("approve", EmailApproval.APPROVED), ("reject", EmailApproval.REJECTED)],
)
def test_only_approvers_approve_or_reject_a_queue_address(approver, owner, staff, action, expected):
    queue = QueueFactory(members=[owner], email_router_access_approval=EmailApproval.PENDING)
    for actor in (owner, staff):
        answer = client_for(actor).post(f"/api/v1/queues/{queue.pk}/{action}/")
        assert answer.status_code == 403
        assert APPROVE in answer.json()["detail"]
    queue.refresh_from_db()
    assert queue.email_router_access_approval == EmailApproval.PENDING
    answer = client_for(approver).post(f"/api/v1/queues/{queue.pk}/{action}/")
    assert answer.status_code == 200
    assert answer.json()["email_router_access_approval"] == expected
    assert answer.json()["members"] == [owner.pk]
    queue.refresh_from_db()
    assert queue.email_router_access_approval == expected


def test_queues_filter_by_approval_delivery_member_and_search(owner):
    support = QueueFactory(name="Support", email="support@example.com", members=[owner])
    QueueFactory(name="Sales", email_router_access_approval=EmailApproval.PENDING)
    relay = QueueFactory(name="Relay", outgoing_delivery="external")
    client = client_for(owner)

    def names(query):
        return [q["name"] for q in results(client.get(f"/api/v1/queues/?{query}"))]

    assert names("") == ["Relay", "Sales", "Support"]
    assert names("email_router_access_approval=pending_approval") == ["Sales"]
    assert names("email_router_access_approval=approved&outgoing_delivery=external") == ["Relay"]
    assert names(f"members={owner.pk}") == ["Support"]
    assert names("search=support@") == ["Support"]
    assert names("ordering=-name") == ["Support", "Sales", "Relay"]
    assert {support.pk, relay.pk} <= {q["id"] for q in results(client.get("/api/v1/queues/"))}


@pytest.mark.parametrize(
    "query", ["email_router_access_approval=yes", "outgoing_delivery=pigeon", "members=abc"]
)
def test_queues_refuse_an_invalid_filter_value(owner, query):
    answer = client_for(owner).get(f"/api/v1/queues/?{query}")
    assert answer.status_code == 400
    assert query.split("=")[0] in answer.json()


def test_creating_a_queue_with_an_idempotency_key_twice_creates_one(staff):
    client = client_for(staff)
    body = {"name": "Support", "email": "support@example.com"}
    first = client.post("/api/v1/queues/", body, HTTP_IDEMPOTENCY_KEY="q-1")
    again = client.post("/api/v1/queues/", body, HTTP_IDEMPOTENCY_KEY="q-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Queue.objects.count() == 1


# --- The organisation --------------------------------------------------------------


def test_any_signed_in_user_reads_the_organisation_settings(owner, org):
    answer = client_for(owner).get("/api/v1/organization/")
    assert answer.status_code == 200
    body = answer.json()
    assert {k: body[k] for k in body if k != "modified_at"} == {
        "name": org.name,
        "require_approval_for_user_email": True,
        "require_approval_for_queue_email": True,
        "use_tracking_token": True,
        "tracking_token_prefix": "CRM",
        "tracking_token_digits": 7,
        "max_attachment_bytes": 25 * 1024 * 1024,
    }
    assert Organization.objects.count() == 1


def test_staff_change_the_organisation_settings(staff, org):
    answer = client_for(staff).patch(
        "/api/v1/organization/",
        {
            "require_approval_for_queue_email": False,
            "tracking_token_prefix": "TKT",
            "tracking_token_digits": 4,
            "max_attachment_bytes": 1000,
        },
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["tracking_token_prefix"] == "TKT"
    org.refresh_from_db()
    assert org.require_approval_for_queue_email is False
    assert org.require_approval_for_user_email is True
    assert (org.tracking_token_prefix, org.tracking_token_digits) == ("TKT", 4)
    assert org.max_attachment_bytes == 1000
    assert Organization.objects.count() == 1


def test_a_changed_prefix_is_the_one_sending_puts_in_the_subject(staff, org):
    client_for(staff).patch(
        "/api/v1/organization/", {"tracking_token_prefix": "TKT", "tracking_token_digits": 4}
    )
    email = EmailFactory(sender_user=staff, subject="Renewal", with_to="ann@example.com")
    email = email_send(email=email, actor=staff)
    assert email.subject == f"Renewal TKT:{email.pk:04d}"


@pytest.mark.parametrize("actor_kind", ["owner", "approver"])
def test_changing_the_organisation_needs_staff(owner, approver, org, actor_kind):
    actor = {"owner": owner, "approver": approver}[actor_kind]
    answer = client_for(actor).patch("/api/v1/organization/", {"use_tracking_token": False})
    assert answer.status_code == 403
    assert "is_staff" in answer.json()["detail"]
    org.refresh_from_db()
    assert org.use_tracking_token is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tracking_token_prefix": "CRM\r\nBcc: x@example.com"}, "tracking_token_prefix"),
        ({"tracking_token_prefix": "CRM\n"}, "tracking_token_prefix"),
        ({"tracking_token_prefix": "C RM"}, "tracking_token_prefix"),
        ({"tracking_token_prefix": ""}, "tracking_token_prefix"),
        ({"tracking_token_prefix": "X" * 21}, "tracking_token_prefix"),
        ({"tracking_token_prefix": ["CRM"]}, "tracking_token_prefix"),
        ({"tracking_token_digits": 0}, "tracking_token_digits"),
        ({"tracking_token_digits": 13}, "tracking_token_digits"),
        ({"max_attachment_bytes": 0}, "max_attachment_bytes"),
        ({"max_attachment_bytes": -1}, "max_attachment_bytes"),
        ({"max_attachment_bytes": 10**30}, "max_attachment_bytes"),
        ({"max_attachment_bytes": 2 * 1024**3}, "max_attachment_bytes"),
        ({"max_attachment_bytes": "lots"}, "max_attachment_bytes"),
        ({"use_tracking_token": "perhaps"}, "use_tracking_token"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_organisation_settings_are_a_400_naming_the_field(staff, org, body, field):
    before = Organization.objects.values().get()
    answer = client_for(staff).patch("/api/v1/organization/", body)
    assert answer.status_code == 400, answer.content
    data = answer.json()
    assert field in data or field in data.get("errors", {})
    assert Organization.objects.values().get() == before


def test_the_organisation_cannot_be_replaced_created_or_deleted(staff, org):
    client = client_for(staff)
    assert client.put("/api/v1/organization/", {"name": "X"}).status_code == 405
    assert client.post("/api/v1/organization/", {"name": "X"}).status_code == 405
    assert client.delete("/api/v1/organization/").status_code == 405
    assert Organization.objects.get().name == org.name


# --- Accounts --------------------------------------------------------------------


def test_any_signed_in_user_creates_and_changes_an_account(owner):
    client = client_for(owner)
    answer = client.post("/api/v1/accounts/", {"name": "Nordlys AS", "city": "Oslo"})
    assert answer.status_code == 201, answer.content
    account = Account.objects.get()
    assert answer.json()["id"] == account.pk
    answer = client.patch(f"/api/v1/accounts/{account.pk}/", {"website": "https://nordlys.example"})
    assert answer.status_code == 200
    account.refresh_from_db()
    assert (account.name, account.city, account.website) == (
        "Nordlys AS",
        "Oslo",
        "https://nordlys.example",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"city": "Oslo"}, "name"),
        ({"name": "  "}, "name"),
        ({"name": "A", "email": "nope"}, "email"),
        ({"name": "A", "website": "javascript:alert(1)"}, "website"),
        ({"name": "A", "city": "x" * 101}, "city"),
    ],
)
def test_invalid_account_input_is_a_400_naming_the_field(owner, body, field):
    answer = client_for(owner).post("/api/v1/accounts/", body)
    assert answer.status_code == 400
    assert field in answer.json()
    assert not Account.objects.exists()


def test_only_staff_delete_an_account_and_its_contacts_stay_without_it(staff, owner):
    account = AccountFactory()
    contact = ContactFactory(account=account)
    answer = client_for(owner).delete(f"/api/v1/accounts/{account.pk}/")
    assert answer.status_code == 403
    assert "is_staff" in answer.json()["detail"]
    assert Account.objects.filter(pk=account.pk).exists()
    assert client_for(staff).delete(f"/api/v1/accounts/{account.pk}/").status_code == 204
    assert not Account.objects.exists()
    contact.refresh_from_db()
    assert contact.account is None


def test_accounts_filter_by_city_and_search(owner):
    AccountFactory(name="Nordlys AS", city="Oslo")
    AccountFactory(name="Fjord Freight", city="Bergen")
    client = client_for(owner)
    assert [a["name"] for a in results(client.get("/api/v1/accounts/?city=oslo"))] == ["Nordlys AS"]
    assert [a["name"] for a in results(client.get("/api/v1/accounts/?search=fjord"))] == [
        "Fjord Freight"
    ]
    assert [a["name"] for a in results(client.get("/api/v1/accounts/?ordering=-city"))] == [
        "Nordlys AS",
        "Fjord Freight",
    ]


# --- Contacts --------------------------------------------------------------------


def test_creating_a_contact_makes_unknown_tags_and_reuses_known_ones(owner):
    vip = TagFactory(name="vip")
    account = AccountFactory()
    answer = client_for(owner).post(
        "/api/v1/contacts/",
        {
            "first_name": "Ann",
            "last_name": "Lee",
            "email": "ann@example.com",
            "account": account.pk,
            "city": "Oslo",
            "tags": ["VIP", "renewal-2026", "renewal-2026"],
            "do_not_bulk_email": True,
        },
    )
    assert answer.status_code == 201, answer.content
    contact = Contact.objects.get()
    body = answer.json()
    assert body == {
        "id": contact.pk,
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@example.com",
        "account": account.pk,
        "city": "Oslo",
        "tags": ["renewal-2026", "vip"],
        "do_not_email": False,
        "do_not_bulk_email": True,
        "created_at": body["created_at"],
    }
    assert set(contact.tags.all()) == {vip, Tag.objects.get(name="renewal-2026")}
    assert Tag.objects.count() == 2
    assert contact.do_not_bulk_email is True


def test_patching_tags_replaces_them_and_omitting_them_keeps_them(owner):
    contact = ContactFactory(last_name="Lee")
    contact.tags.set([TagFactory(name="vip"), TagFactory(name="old")])
    client = client_for(owner)
    answer = client.patch(f"/api/v1/contacts/{contact.pk}/", {"city": "Bergen"})
    assert answer.status_code == 200
    assert answer.json()["tags"] == ["old", "vip"]
    answer = client.patch(f"/api/v1/contacts/{contact.pk}/", {"tags": ["vip", "new"]})
    assert answer.status_code == 200
    assert answer.json()["tags"] == ["new", "vip"]
    contact.refresh_from_db()
    assert contact.city == "Bergen"
    assert sorted(t.name for t in contact.tags.all()) == ["new", "vip"]
    assert client.patch(f"/api/v1/contacts/{contact.pk}/", {"tags": []}).json()["tags"] == []
    assert not contact.tags.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": "Ann"}, "last_name"),
        ({"last_name": "Lee", "email": "not-an-address"}, "email"),
        ({"last_name": "Lee", "email": "ann@example.com\nBcc: x@example.com"}, "email"),
        ({"last_name": "Lee", "account": 999999}, "account"),
        ({"last_name": "Lee", "account": "abc"}, "account"),
        ({"last_name": "Lee", "tags": ["has space"]}, "tags"),
        ({"last_name": "Lee", "tags": ["ok", "bad/slash"]}, "tags"),
        ({"last_name": "Lee", "tags": "vip"}, "tags"),
        ({"last_name": "Lee", "tags": ["x" * 51]}, "tags"),
        ({"last_name": "Lee", "do_not_email": "sometimes"}, "do_not_email"),
        ({"last_name": "Lee\x00"}, "last_name"),
    ],
)
def test_invalid_contact_input_is_a_400_naming_the_field_and_saves_nothing(owner, body, field):
    answer = client_for(owner).post("/api/v1/contacts/", body)
    assert answer.status_code == 400, answer.content
    data = answer.json()
    assert field in data or field in data.get("errors", {})
    assert not Contact.objects.exists()
    assert not Tag.objects.exists()


def test_a_refused_contact_change_leaves_the_contact_as_it_was(owner):
    contact = ContactFactory(last_name="Lee", city="Oslo")
    contact.tags.set([TagFactory(name="vip")])
    answer = client_for(owner).patch(
        f"/api/v1/contacts/{contact.pk}/", {"city": "Bergen", "tags": ["vip", "no good"]}
    )
    assert answer.status_code == 400
    contact.refresh_from_db()
    assert contact.city == "Oslo"
    assert [t.name for t in contact.tags.all()] == ["vip"]
    assert Tag.objects.count() == 1


def test_only_staff_delete_a_contact_and_emails_keep_the_address(staff, owner):
    contact = ContactFactory(email="ann@example.com")
    email = EmailFactory(sender_user=staff)
    party = EmailParty.objects.create(
        email=email, role="to", address=contact.email, contact=contact
    )
    assert client_for(owner).delete(f"/api/v1/contacts/{contact.pk}/").status_code == 403
    assert Contact.objects.filter(pk=contact.pk).exists()
    assert client_for(staff).delete(f"/api/v1/contacts/{contact.pk}/").status_code == 204
    assert not Contact.objects.exists()
    party.refresh_from_db()
    assert (party.contact, party.address) == (None, "ann@example.com")


def test_contacts_filter_by_account_city_tag_flags_and_creation_time(owner):
    north, south = AccountFactory(name="North"), AccountFactory(name="South")
    ann = ContactFactory(last_name="Ann", account=north, city="Oslo")
    ann.tags.set([TagFactory(name="vip")])
    bob = ContactFactory(last_name="Bob", account=south, city="Bergen", do_not_bulk_email=True)
    old = ContactFactory(last_name="Old", account=None, city="Oslo")
    Contact.objects.filter(pk=old.pk).update(
        created_at=timezone.make_aware(dt.datetime(2020, 5, 1, 12, 0))
    )
    client = client_for(owner)

    def names(query):
        return [c["last_name"] for c in results(client.get(f"/api/v1/contacts/?{query}"))]

    assert names("") == ["Ann", "Bob", "Old"]
    assert names(f"account={north.pk}") == ["Ann"]
    assert names("account=999999") == []
    assert names("city=oslo") == ["Ann", "Old"]
    assert names("tag=VIP") == ["Ann"]
    assert names("do_not_bulk_email=true") == ["Bob"]
    assert names("do_not_bulk_email=false&city=Oslo") == ["Ann", "Old"]
    assert names("created_after=2021-01-01") == ["Ann", "Bob"]
    assert names("created_after=2020-05-01T11:00:00Z") == ["Ann", "Bob", "Old"]
    assert names("created_before=2021-01-01") == ["Old"]
    assert names("search=north") == ["Ann"]
    assert names("ordering=-last_name") == ["Old", "Bob", "Ann"]
    assert names("ordering=unknown_field") == ["Ann", "Bob", "Old"]
    assert {bob.pk} == {c["id"] for c in results(client.get("/api/v1/contacts/?city=Bergen"))}


@pytest.mark.parametrize(
    "query",
    [
        "account=abc",
        "account=1.5",
        "account=0",
        "do_not_bulk_email=maybe",
        "do_not_email=2",
        "created_after=yesterday",
        "created_after=2026-13-45",
        "created_before=2026-01-01T25:00",
        "city=a%00b",
    ],
)
def test_contacts_refuse_an_invalid_filter_value_naming_it(owner, query):
    answer = client_for(owner).get(f"/api/v1/contacts/?{query}")
    assert answer.status_code == 400, answer.content
    assert query.split("=")[0] in answer.json()


def test_a_search_with_a_nul_character_is_a_400(owner):
    assert client_for(owner).get("/api/v1/contacts/?search=a%00b").status_code == 400


# --- Everyone and every list ---------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users/",
        "/api/v1/queues/",
        "/api/v1/organization/",
        "/api/v1/accounts/",
        "/api/v1/contacts/",
    ],
)
def test_anonymous_requests_are_refused_with_401(path):
    assert client_for().get(path).status_code == 401
    assert client_for().post(path, {"name": "x"}).status_code == 401
    assert not Queue.objects.exists() and not Account.objects.exists()


@pytest.mark.parametrize("path", ["users", "queues", "accounts", "contacts"])
def test_unknown_ids_are_a_404(owner, path):
    answer = client_for(owner).get(f"/api/v1/{path}/999999/")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"
    assert client_for(owner).get(f"/api/v1/{path}/abc/").status_code == 404


def _many(kind: str, n: int, members: list[User]) -> None:
    for i in range(n):
        if kind == "users":
            UserFactory()
        elif kind == "queues":
            QueueFactory(members=members)
        elif kind == "accounts":
            AccountFactory()
        else:
            contact = ContactFactory()
            contact.tags.set([TagFactory(name=f"t{i % 3}"), TagFactory(name="all")])


@pytest.mark.parametrize("kind", ["users", "queues", "accounts", "contacts"])
def test_list_query_count_does_not_grow_with_page_size(owner, kind):
    _many(kind, 50, [owner, UserFactory()])
    client = client_for(owner)

    def page(size):
        return lambda: client.get(f"/api/v1/{kind}/?page_size={size}")

    small, small_queries = count_queries(page(5))
    large, large_queries = count_queries(page(50))
    assert len(small.json()["results"]) == 5
    assert len(large.json()["results"]) == 50
    assert small_queries == large_queries


def test_ids_too_large_for_the_database_are_a_400_or_404_not_a_500(staff):
    huge = 10**30
    client = client_for(staff)
    assert client.get(f"/api/v1/queues/?members={huge}").status_code == 400
    assert client.get(f"/api/v1/contacts/?account={huge}").status_code == 400
    assert client.get(f"/api/v1/queues/{huge}/").status_code == 404
    assert client.delete(f"/api/v1/contacts/{huge}/").status_code == 404
    answer = client.post(
        "/api/v1/queues/", {"name": "Desk", "email": "desk@example.com", "members": [huge]}
    )
    assert answer.status_code == 400
    assert "members" in answer.json()
    answer = client.post("/api/v1/contacts/", {"last_name": "Lee", "account": huge})
    assert answer.status_code == 400
    assert "account" in answer.json()
    assert not Queue.objects.exists() and not Contact.objects.exists()


# --- issue 11: JSON in, as API.md says ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method", "data"),
    [
        ("/api/v1/accounts/", "post", {"name": "Nordlys"}),
        ("/api/v1/contacts/", "post", {"last_name": "Lee"}),
        ("/api/v1/queues/", "post", {"name": "Help", "email": "help@example.com"}),
        ("/api/v1/organization/", "patch", {"name": "Other"}),
        ("/api/v1/templates/", "post", {"title": "T", "subject": "S"}),
        ("/api/v1/suppressions/", "post", {"address": "ann@example.com"}),
    ],
)
@pytest.mark.parametrize("fmt", ["multipart", "form"])
def test_record_writes_take_json_only(staff, org, path, method, data, fmt):
    """A form body read an empty field as "not given" (a template's language "" kept
    "en"), unlike the schema's JSON; only uploads (attachments/) and auth/token/ take
    form bodies now."""
    client = client_for(staff)
    if fmt == "form":
        answer = getattr(client, method)(
            path, "name=x", content_type="application/x-www-form-urlencoded"
        )
    else:
        answer = getattr(client, method)(path, data, format="multipart")
    assert answer.status_code == 415
    assert answer.json()["code"] == "unsupported_media_type"
    assert Organization.get().name != "Other"
    assert not Account.objects.exists()
