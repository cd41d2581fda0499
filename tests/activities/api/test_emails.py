"""The email endpoints of API.md over HTTP with token auth: CRUD, send, cancel, events,
send from template, delivery results, visibility and list queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from activities.models import (
    ActivityMimeAttachment,
    Direction,
    Email,
    EmailEvent,
    EmailParty,
    EmailStatus,
    PartyRole,
)
from activities.services.attachments import attachment_store
from activities.services.bulk import bulk_send_start
from activities.services.emails import email_create
from crm.models import EmailApproval, OutgoingDelivery
from tests.api import client_for, count_queries
from tests.factories import (
    AccountFactory,
    ContactFactory,
    EmailFactory,
    EmailPartyFactory,
    QueueFactory,
    TemplateFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

EMAILS = "/api/v1/emails/"

API_MD_KEYS = {
    "id",
    "subject",
    "body_html",
    "body_text",
    "direction",
    "status",
    "state",
    "sender",
    "from_address",
    "to",
    "cc",
    "bcc",
    "regarding",
    "priority",
    "template",
    "tracking_token",
    "message_id",
    "in_reply_to",
    "attachments",
    "attempts",
    "last_error",
    "scheduled_at",
    "sent_at",
    "created_at",
    "modified_at",
}


def url(email: Email | int, action: str = "") -> str:
    pk = email if isinstance(email, int) else email.pk
    return f"{EMAILS}{pk}/" + (f"{action}/" if action else "")


def event_count(email: Email) -> int:
    return EmailEvent.objects.filter(email=email).count()


# --- create -------------------------------------------------------------------------


def test_create_answers_201_with_the_email_exactly_as_api_md_shows_it(org, owner, team_queue):
    contact = ContactFactory(first_name="Ann", last_name="Lee", email="ann@example.com")
    account = AccountFactory()
    template = TemplateFactory()
    response = client_for(owner).post(
        EMAILS,
        {
            "subject": "Your renewal",
            "body_html": "<p>Hello</p>",
            "body_text": "Hello",
            "sender": {"type": "queue", "id": team_queue.pk},
            "to": [{"contact": contact.pk}, "Bo Berg <bo@example.com>"],
            "cc": [{"address": "cc@example.com", "name": "Cee"}],
            "bcc": ["hidden@example.com"],
            "regarding": {"type": "account", "id": account.pk},
            "priority": "high",
            "template": template.pk,
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert API_MD_KEYS <= set(body)
    email = Email.objects.get()
    assert body["id"] == email.pk
    assert body["subject"] == "Your renewal"
    assert body["body_html"] == "<p>Hello</p>" and body["body_text"] == "Hello"
    assert (body["direction"], body["status"], body["state"]) == ("outgoing", "draft", "open")
    assert body["sender"] == {"type": "queue", "id": team_queue.pk}
    assert body["from_address"] == "support@example.com"
    assert [(p["address"], p["name"], p["contact"]) for p in body["to"]] == [
        ("ann@example.com", "Ann Lee", contact.pk),
        ("bo@example.com", "Bo Berg", None),
    ]
    assert [(p["address"], p["name"]) for p in body["cc"]] == [("cc@example.com", "Cee")]
    assert [p["address"] for p in body["bcc"]] == ["hidden@example.com"]
    assert body["regarding"] == {"type": "account", "id": account.pk}
    assert body["priority"] == "high"
    assert body["template"] == template.pk
    for empty in ("tracking_token", "message_id", "in_reply_to", "last_error"):
        assert body[empty] is None
    assert body["attachments"] == [] and body["attempts"] == 0
    assert body["scheduled_at"] is None and body["sent_at"] is None
    assert body["created_at"].endswith(("Z", "+00:00"))
    assert body["possible_duplicate"] is False
    assert body["events_url"] == f"http://testserver{url(email, 'events')}"
    email.refresh_from_db()
    assert email.sender_queue == team_queue and email.created_by == owner
    assert email.regarding == account and email.template == template
    assert list(email.events.values_list("to_status", "actor")) == [("draft", owner.pk)]
    assert client_for(owner).get(url(email)).json() == body


def test_create_sends_as_the_acting_user_when_no_sender_is_given(org, owner):
    response = client_for(owner).post(EMAILS, {"subject": "Hi", "to": ["ann@example.com"]})
    assert response.status_code == 201
    assert response.json()["sender"] == {"type": "user", "id": owner.pk}
    assert response.json()["from_address"] == owner.email
    assert Email.objects.get().sender_user == owner


def test_create_refuses_a_queue_the_actor_is_not_a_member_of(org, outsider, team_queue):
    response = client_for(outsider).post(
        EMAILS, {"subject": "Hi", "sender": {"type": "queue", "id": team_queue.pk}}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "sender_not_allowed"
    assert "not a member of the queue Support" in response.json()["detail"]
    assert Email.objects.count() == 0


def test_create_refuses_another_user_as_sender(org, owner, teammate):
    response = client_for(owner).post(EMAILS, {"sender": {"type": "user", "id": teammate.pk}})
    assert response.status_code == 403
    assert response.json()["code"] == "sender_not_allowed"
    assert Email.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"to": ["ann@example.com\r\nBcc: victim@example.com"]}, "to", None),
        ({"to": ["not-an-address"]}, "to", None),
        ({"to": "ann@example.com"}, "to", None),
        ({"to": [{"address": "a@example.com", "contact": 1, "user": 2}]}, "to", None),
        ({"to": [{"contact": 999999}]}, None, "invalid_address"),
        ({"to": [{"contact": 10**30}]}, None, "invalid_address"),
        ({"to": ["a@example.com"] * 501}, "to", None),
        ({"cc": [{"address": 5}]}, "cc", None),
        ({"subject": "Hi\r\nBcc: victim@example.com"}, None, "invalid_header"),
        ({"subject": "x" * 401}, "subject", None),
        ({"priority": "urgent"}, "priority", None),
        ({"regarding": {"type": "account", "id": 999999}}, "regarding", None),
        ({"regarding": {"type": "planet", "id": 1}}, "regarding", None),
        ({"regarding": {"type": "account", "id": 10**30}}, "regarding", None),
        ({"regarding": "account:1"}, "regarding", None),
        ({"sender": {"type": "contact", "id": 1}}, "sender", None),
        ({"sender": None}, "sender", None),
        ({"template": 999999}, "template", None),
        ({"template": "x"}, "template", None),
        ({"template": 10**30}, "template", None),
        ({"scheduled_at": "tomorrow"}, "scheduled_at", None),
        ({"in_reply_to": "<a@b>\r\nBcc: x@y.z"}, None, "invalid_header"),
        ({"tracking_token": "CRM:1\nX: y"}, None, "invalid_header"),
    ],
)
def test_create_refuses_bad_input_with_a_400_naming_the_cause(org, owner, body, field, code):
    response = client_for(owner).post(EMAILS, body)
    assert response.status_code == 400, response.content
    if field:
        assert field in response.json()
    if code:
        assert response.json()["code"] == code
    assert Email.objects.count() == 0 and EmailParty.objects.count() == 0


def test_create_takes_json_only(org, owner):
    response = client_for(owner).post(EMAILS, {"subject": "Hi"}, format="multipart")
    assert response.status_code == 415
    response = client_for(owner).post(EMAILS, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert Email.objects.count() == 0


def test_fields_the_server_sets_are_refused_on_create_naming_them(org, owner):
    """Issue 11: they were ignored in silence, like typos; now both are a 400."""
    response = client_for(owner).post(
        EMAILS, {"subject": "Hi", "status": "sent", "direction": "incoming", "attempts": 7}
    )
    assert response.status_code == 400
    assert set(response.json()) == {"status", "direction", "attempts"}
    assert response.json()["status"] == [
        "not a field this request takes (unknown, or set by the server)"
    ]
    assert not Email.objects.exists()


def test_a_misspelt_field_is_refused_instead_of_sending_now(org, owner):
    email = EmailFactory(sender_user=owner, created_by=owner)
    response = client_for(owner).post(url(email, "send"), {"sheduled_at": "2030-01-01T00:00:00Z"})
    assert response.status_code == 400
    assert "sheduled_at" in response.json()
    email.refresh_from_db()
    assert email.status == "draft"


# --- who may see what ---------------------------------------------------------------


@pytest.fixture
def world(org, owner, teammate, outsider, staff, team_queue):
    """One email of each kind of visibility, from the owner's point of view."""
    other_queue = QueueFactory(name="Sales")
    return {
        "own": EmailFactory(sender_user=owner, created_by=owner, subject="own"),
        "queue": EmailFactory(sender_user=None, sender_queue=team_queue, subject="queue"),
        "party": EmailPartyFactory(
            email=EmailFactory(sender_user=staff, subject="party"),
            user=owner,
            address=owner.email,
        ).email,
        "other": EmailFactory(sender_user=None, sender_queue=other_queue, subject="other"),
    }


def listed(user) -> set[str]:
    response = client_for(user).get(EMAILS, {"page_size": 200})
    assert response.status_code == 200
    return {e["subject"] for e in response.json()["results"]}


def test_list_shows_each_user_what_the_visibility_rule_allows(
    world, owner, teammate, outsider, staff
):
    assert listed(staff) == {"own", "queue", "party", "other"}
    assert listed(owner) == {"own", "queue", "party"}
    assert listed(teammate) == {"queue"}
    assert listed(outsider) == set()


def test_anonymous_requests_are_401(world):
    anonymous = client_for(None)
    email = world["own"]
    assert anonymous.get(EMAILS).status_code == 401
    assert anonymous.post(EMAILS, {"subject": "x"}).status_code == 401
    assert anonymous.get(url(email)).status_code == 401
    assert anonymous.patch(url(email), {"subject": "x"}).status_code == 401
    assert anonymous.delete(url(email)).status_code == 401
    for action in ("send", "cancel", "delivery-result"):
        assert anonymous.post(url(email, action), {}).status_code == 401
    assert anonymous.get(url(email, "events")).status_code == 401
    assert anonymous.post(f"{EMAILS}claim/", {}).status_code == 401
    assert anonymous.post(f"{EMAILS}send-from-template/", {}).status_code == 401
    assert Email.objects.filter(status=EmailStatus.DRAFT).count() == 4
    assert EmailEvent.objects.count() == 0


@pytest.mark.parametrize("action", ["send", "cancel", "delivery-result"])
def test_an_email_the_caller_may_not_see_is_404_for_every_action(world, outsider, action):
    email = world["queue"]
    client = client_for(outsider)
    assert client.get(url(email)).status_code == 404
    assert client.get(url(email, "events")).status_code == 404
    assert client.patch(url(email), {"subject": "mine"}).status_code == 404
    assert client.delete(url(email)).status_code == 404
    response = client.post(url(email, action), {"lease_token": "1", "outcome": "sent"})
    assert response.status_code == 404
    email.refresh_from_db()
    assert (email.subject, email.status) == ("queue", EmailStatus.DRAFT)
    assert event_count(email) == 0


def test_unknown_and_malformed_ids_are_404(org, owner):
    client = client_for(owner)
    for pk in ("999999", "abc", "9" * 30, "-1", "1.5"):
        assert client.get(f"{EMAILS}{pk}/").status_code == 404, pk
        assert client.post(f"{EMAILS}{pk}/send/", {}).status_code == 404, pk


def test_teammate_may_act_for_the_queue_and_staff_outsider_may_only_look(
    world, teammate, staff, team_queue
):
    queue_email = world["queue"]
    EmailPartyFactory(email=queue_email, address="ann@example.com")
    assert client_for(staff).get(url(queue_email)).status_code == 200
    response = client_for(staff).patch(url(queue_email), {"subject": "by staff"})
    assert response.status_code == 403 and response.json()["code"] == "sender_not_allowed"
    response = client_for(staff).post(url(queue_email, "send"), {})
    assert response.status_code == 403 and response.json()["code"] == "sender_not_allowed"
    queue_email.refresh_from_db()
    assert (queue_email.subject, queue_email.status) == ("queue", EmailStatus.DRAFT)
    response = client_for(teammate).patch(url(queue_email), {"subject": "by bob"})
    assert response.status_code == 200 and response.json()["subject"] == "by bob"


# --- list: filters, search, ordering, query count --------------------------------------


def subjects(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [e["subject"] for e in response.json()["results"]]


def test_list_filters_by_each_parameter(org, owner, team_queue):
    contact = ContactFactory()
    template = TemplateFactory()
    now = timezone.now()
    draft = EmailFactory(sender_user=owner, subject="draft")
    sent = EmailFactory(
        sender_user=None,
        sender_queue=team_queue,
        subject="sent",
        status=EmailStatus.SENT,
        state="completed",
        sent_at=now - timedelta(days=2),
        priority="high",
        template=template,
    )
    incoming = EmailFactory(
        sender_user=owner,
        subject="incoming",
        direction=Direction.INCOMING,
        status="received",
        state="completed",
    )
    about = email_create(actor=owner, subject="about", regarding=contact)
    Email.objects.filter(pk=draft.pk).update(created_at=now - timedelta(days=10))
    client = client_for(owner)

    def find(**params):
        return set(subjects(client.get(EMAILS, params)))

    assert find(status="sent") == {"sent"}
    assert find(status=["sent", "received"]) == {"sent", "incoming"}
    assert find(direction="incoming") == {"incoming"}
    assert find(sender_queue=team_queue.pk) == {"sent"}
    assert find(sender_user=owner.pk) == {"draft", "incoming", "about"}
    assert find(priority="high") == {"sent"}
    assert find(template=template.pk) == {"sent"}
    job = bulk_send_start(template=template, sender=team_queue, query={}, actor=owner)
    Email.objects.filter(pk=sent.pk).update(bulk_send=job)
    assert find(bulk_send=job.pk) == {"sent"}
    assert find(bulk_send=job.pk + 1) == set()
    assert find(regarding_type="contact", regarding_id=contact.pk) == {"about"}
    assert find(regarding_type="account") == set()
    assert find(created_before=(now - timedelta(days=5)).isoformat()) == {"draft"}
    assert find(created_after=(now - timedelta(days=5)).isoformat()) == {
        "sent",
        "incoming",
        "about",
    }
    assert find(sent_after=(now - timedelta(days=3)).isoformat()) == {"sent"}
    assert find(sent_before=(now - timedelta(days=3)).isoformat()) == set()
    assert find(state="open") == {"draft", "about"}
    assert {draft.pk, sent.pk, incoming.pk, about.pk} == {
        e["id"] for e in client.get(EMAILS).json()["results"]
    }


@pytest.mark.parametrize(
    "params",
    [
        {"status": "bogus"},
        {"sender_queue": "x"},
        {"sender_queue": "1.5"},
        {"sender_user": str(10**30)},
        {"created_after": "yesterday"},
        {"regarding_type": "planet"},
        {"search": "a\x00b"},
        {"page": "0"},
        {"page": "999"},
    ],
)
def test_list_refuses_bad_parameters_without_a_server_error(org, owner, params):
    EmailFactory(sender_user=owner)
    response = client_for(owner).get(EMAILS, params)
    assert response.status_code in (400, 404), response.content


def test_unknown_ordering_is_ignored_and_page_size_is_capped(org, owner):
    EmailFactory.create_batch(3, sender_user=owner)
    response = client_for(owner).get(EMAILS, {"ordering": "lease_owner", "page_size": 1000})
    assert response.status_code == 200
    assert response.json()["count"] == 3 and len(response.json()["results"]) == 3


def test_search_finds_subject_and_party_addresses_and_lists_an_email_once(org, owner):
    renewal = email_create(
        actor=owner,
        subject="Your renewal",
        to=["ann@acme.example", "Ann Two <ann2@acme.example>"],
        cc=["ann3@acme.example"],
    )
    email_create(actor=owner, subject="Invoice", to=["bo@other.example"])
    client = client_for(owner)
    response = client.get(EMAILS, {"search": "acme"})
    assert subjects(response) == ["Your renewal"] and response.json()["count"] == 1
    assert subjects(client.get(EMAILS, {"search": "RENEWAL"})) == ["Your renewal"]
    assert subjects(client.get(EMAILS, {"search": "Ann Two"})) == ["Your renewal"]
    assert subjects(client.get(EMAILS, {"search": "invoice other.example"})) == ["Invoice"]
    assert subjects(client.get(EMAILS, {"search": "invoice acme"})) == []
    assert renewal.pk == client.get(EMAILS, {"search": "ann2"}).json()["results"][0]["id"]


def test_ordering_by_each_allowed_field_with_id_breaking_ties(org, owner):
    now = timezone.now()
    emails = [EmailFactory(sender_user=owner, subject=s) for s in ("b", "a", "c", "a")]
    for i, email in enumerate(emails):
        Email.objects.filter(pk=email.pk).update(sent_at=now - timedelta(hours=i))
    client = client_for(owner)

    def ids(ordering: str, **extra) -> list[int]:
        response = client.get(EMAILS, {"ordering": ordering, **extra})
        return [e["id"] for e in response.json()["results"]]

    a1, a2 = emails[1].pk, emails[3].pk
    assert ids("subject") == [a1, a2, emails[0].pk, emails[2].pk]
    assert ids("-subject") == [emails[2].pk, emails[0].pk, a2, a1]
    assert ids("sent_at") == [e.pk for e in reversed(emails)]
    assert ids("id") == sorted(e.pk for e in emails)
    assert ids("-created_at") == sorted((e.pk for e in emails), reverse=True)
    assert ids("created_at") == sorted(e.pk for e in emails)
    pages = ids("subject", page_size=1, page=1) + ids("subject", page_size=1, page=2)
    assert pages == [a1, a2]


@pytest.mark.parametrize("who", ["staff", "member"])
def test_list_query_count_does_not_grow_with_page_size(org, owner, team_queue, staff, who):
    contact = ContactFactory()
    for i in range(55):
        email = email_create(
            actor=owner,
            sender=team_queue if i % 2 else owner,
            subject=f"email {i}",
            to=[contact, "ann@example.com"],
            cc=["cc@example.com"],
            regarding=contact,
            template=TemplateFactory() if i % 5 == 0 else None,
        )
        if i % 3 == 0:
            attachment_store(owner=email, source=f"file {i}".encode(), filename=f"f{i}.txt")
    client = client_for(staff if who == "staff" else owner)
    client.get(EMAILS, {"page_size": 1})  # warm the token and content type caches
    small, small_count = count_queries(lambda: client.get(EMAILS, {"page_size": 5}))
    large, large_count = count_queries(lambda: client.get(EMAILS, {"page_size": 50}))
    assert len(small.json()["results"]) == 5 and len(large.json()["results"]) == 50
    assert small_count == large_count
    searched, searched_count = count_queries(
        lambda: client.get(EMAILS, {"page_size": 50, "search": "example"})
    )
    assert len(searched.json()["results"]) == 50 and searched_count == large_count
    with_attachment = [e for e in large.json()["results"] if e["attachments"]]
    attachment = with_attachment[0]["attachments"][0]
    assert set(attachment) == {"id", "filename", "mime_type", "size", "attachment_id", "subject"}
    assert len(attachment["attachment_id"]) == 64


def test_detail_query_count_is_fixed(org, owner, team_queue):
    email = email_create(actor=owner, subject="x", to=["a@example.com", "b@example.com"])
    attachment_store(owner=email, source=b"1", filename="a.txt")
    client = client_for(owner)
    client.get(url(email))
    _, few = count_queries(lambda: client.get(url(email)))
    email_create(actor=owner, subject="y")
    for i in range(5):
        attachment_store(owner=email, source=f"{i}".encode(), filename=f"{i}.txt")
    _, more = count_queries(lambda: client.get(url(email)))
    assert few == more


# --- edit and delete ----------------------------------------------------------------


def test_patch_edits_a_draft_and_replaces_only_the_given_recipients(org, owner, team_queue):
    email = email_create(actor=owner, subject="old", to=["ann@example.com"], cc=["cc@example.com"])
    contact = ContactFactory()
    response = client_for(owner).patch(
        url(email),
        {
            "subject": "new",
            "to": ["bo@example.com", {"contact": contact.pk}],
            "sender": {"type": "queue", "id": team_queue.pk},
            "regarding": {"type": "contact", "id": contact.pk},
            "tracking_token": "CRM:42",
        },
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["subject"] == "new"
    assert [p["address"] for p in body["to"]] == ["bo@example.com", contact.email]
    assert [p["address"] for p in body["cc"]] == ["cc@example.com"]
    assert body["sender"] == {"type": "queue", "id": team_queue.pk}
    assert body["from_address"] == team_queue.email
    assert body["regarding"] == {"type": "contact", "id": contact.pk}
    assert body["tracking_token"] == "CRM:42"
    email.refresh_from_db()
    assert email.subject == "new" and email.sender_queue == team_queue
    assert email.parties.get(role=PartyRole.FROM).address == team_queue.email
    response = client_for(owner).patch(url(email), {"regarding": None, "cc": []})
    assert response.json()["regarding"] is None and response.json()["cc"] == []


def test_patch_of_a_failed_email_is_allowed(org, owner):
    email = EmailFactory(sender_user=owner, status=EmailStatus.FAILED, subject="old")
    response = client_for(owner).patch(url(email), {"subject": "retry"})
    assert response.status_code == 200 and response.json()["status"] == "failed"


@pytest.mark.parametrize(
    "status",
    [s for s in EmailStatus if s not in (EmailStatus.DRAFT, EmailStatus.FAILED)],
)
def test_patch_of_an_email_not_draft_or_failed_is_409_with_its_status(org, owner, status):
    email = EmailFactory(sender_user=owner, status=status, subject="old")
    response = client_for(owner).patch(url(email), {"subject": "new", "to": ["a@example.com"]})
    assert response.status_code == 409
    assert response.json()["status"] == status and response.json()["code"] == "invalid_status"
    email.refresh_from_db()
    assert email.subject == "old" and email.parties.count() == 0


def test_patch_refuses_switching_to_a_sender_the_actor_may_not_use(org, owner, outsider):
    email = EmailFactory(sender_user=owner, subject="old")
    foreign_queue = QueueFactory()
    response = client_for(owner).patch(
        url(email), {"subject": "new", "sender": {"type": "queue", "id": foreign_queue.pk}}
    )
    assert response.status_code == 403 and response.json()["code"] == "sender_not_allowed"
    email.refresh_from_db()
    assert email.subject == "old" and email.sender_user == owner


def test_put_is_not_allowed(org, owner):
    email = EmailFactory(sender_user=owner)
    assert client_for(owner).put(url(email), {"subject": "x"}).status_code == 405


@pytest.mark.parametrize(
    "status",
    [
        EmailStatus.DRAFT,
        EmailStatus.FAILED,
        EmailStatus.CANCELED,
        EmailStatus.COMPLETED,
        EmailStatus.SENT,
    ],
)
def test_delete_removes_the_email_its_parties_events_and_attachment_links(org, owner, status):
    email = email_create(actor=owner, subject="bye", to=["ann@example.com"])
    attachment, _ = attachment_store(owner=email, source=b"data", filename="a.txt")
    Email.objects.filter(pk=email.pk).update(status=status)
    other = EmailFactory(sender_user=owner, with_to="keep@example.com")
    response = client_for(owner).delete(url(email))
    assert response.status_code == 204
    assert not Email.objects.filter(pk=email.pk).exists()
    assert EmailParty.objects.filter(email_id=email.pk).count() == 0
    assert EmailEvent.objects.filter(email_id=email.pk).count() == 0
    assert not ActivityMimeAttachment.objects.filter(pk=attachment.pk).exists()
    assert list(Email.objects.values_list("pk", flat=True)) == [other.pk]
    assert other.parties.count() == 1


@pytest.mark.parametrize("status", [EmailStatus.PENDING_SEND, EmailStatus.SENDING])
def test_delete_refuses_an_email_in_delivery_with_409(org, owner, status):
    email = EmailFactory(sender_user=owner, status=status, with_to="ann@example.com")
    response = client_for(owner).delete(url(email))
    assert response.status_code == 409
    assert response.json()["status"] == status
    assert "cancel" in response.json()["detail"]
    email.refresh_from_db()
    assert email.status == status and email.parties.count() == 1


def test_delete_by_someone_who_may_not_act_for_the_sender_is_403(world, staff, teammate):
    own = world["own"]
    response = client_for(staff).delete(url(own))
    assert response.status_code == 403 and response.json()["code"] == "sender_not_allowed"
    assert Email.objects.filter(pk=own.pk).exists()
    assert client_for(teammate).delete(url(world["queue"])).status_code == 204


def test_delete_permission_deletes_any_visible_email(world):
    admin = UserFactory(is_staff=True, permissions=["activities.delete_email"])
    for email in world.values():
        assert client_for(admin).delete(url(email)).status_code == 204
    assert Email.objects.count() == 0


# --- send ---------------------------------------------------------------------------


def test_send_queues_for_delivery_and_answers_202_with_the_final_subject(
    org, owner, django_capture_on_commit_callbacks
):
    email = email_create(actor=owner, subject="Hello", to=["ann@example.com"])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(owner).post(url(email, "send"), {})
    assert response.status_code == 202
    email.refresh_from_db()
    assert response.json() == {"id": email.pk, "subject": email.subject, "status": "pending_send"}
    assert email.subject == f"Hello CRM:{email.pk:07d}"
    assert email.status == EmailStatus.PENDING_SEND and email.message_id
    assert len(callbacks) == 1  # the worker's delivery task
    assert list(email.events.values_list("from_status", "to_status")) == [
        ("", "draft"),
        ("draft", "pending_send"),
    ]


def test_send_takes_the_given_tracking_token(org, owner):
    email = email_create(actor=owner, subject="Hello", to=["ann@example.com"])
    response = client_for(owner).post(url(email, "send"), {"tracking_token": "REF:77"})
    assert response.json()["subject"] == "Hello REF:77"


def test_send_to_an_external_sender_enqueues_nothing(
    org, owner, django_capture_on_commit_callbacks
):
    relay = QueueFactory(members=[owner], outgoing_delivery=OutgoingDelivery.EXTERNAL)
    email = email_create(actor=owner, sender=relay, subject="x", to=["ann@example.com"])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(owner).post(url(email, "send"), {"issue_send": True})
    assert response.status_code == 202 and callbacks == []


def test_send_with_issue_send_false_marks_as_sent_and_delivers_nothing(
    org, owner, django_capture_on_commit_callbacks
):
    email = email_create(actor=owner, subject="Logged", to=["ann@example.com"])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(owner).post(url(email, "send"), {"issue_send": False})
    assert response.status_code == 200
    assert response.json() == {"id": email.pk, "subject": "Logged", "status": "sent"}
    assert callbacks == []
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and email.message_id == "" and email.sent_at


def _refusal(client, email, expected_status, code, body=None):
    before = Email.objects.values().get(pk=email.pk)
    events = event_count(email)
    response = client.post(url(email, "send"), body or {})
    assert response.status_code == expected_status, response.json()
    assert response.json()["code"] == code
    assert response.json()["detail"]
    assert Email.objects.values().get(pk=email.pk) == before
    assert event_count(email) == events
    return response.json()


@pytest.mark.parametrize("status", [EmailStatus.SENT, EmailStatus.PENDING_SEND, "canceled"])
def test_send_refuses_a_status_that_cannot_be_sent_with_409_and_the_status(org, owner, status):
    email = EmailFactory(sender_user=owner, status=status, with_to="ann@example.com")
    body = _refusal(client_for(owner), email, 409, "invalid_status")
    assert body["status"] == status


def test_send_refusals_name_their_cause(org, owner, outsider, staff, team_queue):
    client = client_for(owner)
    incoming = EmailFactory(
        sender_user=owner, direction=Direction.INCOMING, with_to="ann@example.com"
    )
    _refusal(client, incoming, 409, "not_outgoing")
    _refusal(client, EmailFactory(sender_user=owner), 400, "no_recipients")
    bad = EmailFactory(sender_user=owner)
    EmailParty.objects.create(email=bad, role=PartyRole.TO, address="ann@exa\r\nmple.com")
    _refusal(client, bad, 400, "invalid_address")
    good = EmailFactory(sender_user=owner, with_to="ann@example.com")
    _refusal(client, good, 400, "invalid_header", {"tracking_token": "T\r\nBcc: x@y.z"})
    _refusal(client_for(staff), good, 403, "sender_not_allowed")
    team_queue.email_router_access_approval = EmailApproval.PENDING
    team_queue.save()
    pending_queue = EmailFactory(sender_user=None, sender_queue=team_queue, with_to="a@example.com")
    body = _refusal(client, pending_queue, 400, "sender_not_approved")
    assert body["detail"].startswith("sender address is not approved")


@pytest.mark.parametrize(
    "body", [{"issue_send": "perhaps"}, {"issue_send": None}, {"tracking_token": "x" * 41}]
)
def test_send_refuses_bad_input(org, owner, body):
    email = EmailFactory(sender_user=owner, with_to="ann@example.com")
    response = client_for(owner).post(url(email, "send"), body)
    assert response.status_code == 400
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT


# --- cancel and events --------------------------------------------------------------


def test_cancel_answers_the_canceled_email(org, owner):
    email = email_create(actor=owner, subject="x", to=["ann@example.com"])
    client_for(owner).post(url(email, "send"), {})
    response = client_for(owner).post(url(email, "cancel"), {"reason": "customer called"})
    assert response.status_code == 200
    assert response.json()["status"] == "canceled" and response.json()["state"] == "canceled"
    email.refresh_from_db()
    assert email.status == EmailStatus.CANCELED and email.canceled_at
    assert email.events.last().reason == "customer called"


def test_cancel_of_a_sent_email_is_409(org, owner):
    email = EmailFactory(sender_user=owner, status=EmailStatus.SENT)
    response = client_for(owner).post(url(email, "cancel"), {})
    assert response.status_code == 409 and response.json()["status"] == "sent"
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT and event_count(email) == 0


def test_events_list_every_change_oldest_first(org, owner):
    email = email_create(actor=owner, subject="x", to=["ann@example.com"])
    client = client_for(owner)
    client.post(url(email, "send"), {})
    client.post(url(email, "cancel"), {})
    response = client.get(url(email, "events"))
    assert response.status_code == 200
    events = response.json()["results"]
    assert response.json()["count"] == 3
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "draft"),
        ("draft", "pending_send"),
        ("pending_send", "canceled"),
    ]
    first = events[0]
    assert set(first) == {
        "id",
        "kind",
        "from_status",
        "to_status",
        "actor",
        "actor_label",
        "reason",
        "data",
        "created_at",
    }
    assert first["kind"] == "status" and first["actor"] == owner.pk
    assert first["actor_label"] == "alice" and first["reason"] == "created"
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_events_ignore_list_filters(org, owner):
    email = email_create(actor=owner, subject="x")
    response = client_for(owner).get(url(email, "events"), {"status": "sent"})
    assert response.status_code == 200 and response.json()["count"] == 1


# --- send from template -------------------------------------------------------------


def test_send_from_template_creates_and_queues_the_email(org, owner, team_queue):
    contact = ContactFactory(first_name="Ann", last_name="Lee", email="ann@example.org")
    template = TemplateFactory()
    attachment_store(owner=template, source=b"terms", filename="terms.pdf")
    response = client_for(owner).post(
        f"{EMAILS}send-from-template/",
        {
            "template": template.pk,
            "regarding": {"type": "contact", "id": contact.pk},
            "sender": {"type": "queue", "id": team_queue.pk},
            "cc": ["boss@example.com"],
        },
    )
    assert response.status_code == 202, response.json()
    body = response.json()
    email = Email.objects.get()
    assert body["id"] == email.pk and body["status"] == "pending_send"
    assert body["subject"] == f"Hello Ann CRM:{email.pk:07d}"
    assert [p["address"] for p in body["to"]] == ["ann@example.org"]
    assert [p["address"] for p in body["cc"]] == ["boss@example.com"]
    assert body["template"] == template.pk
    assert body["regarding"] == {"type": "contact", "id": contact.pk}
    assert [a["filename"] for a in body["attachments"]] == ["terms.pdf"]
    assert body["sender"] == {"type": "queue", "id": team_queue.pk}


def test_send_from_template_reports_a_template_error_with_its_line(org, owner):
    template = TemplateFactory(body_text="Hello\n{{ contact.first_name|divisibleby:2 }}")
    contact = ContactFactory()
    response = client_for(owner).post(
        f"{EMAILS}send-from-template/",
        {"template": template.pk, "regarding": {"type": "contact", "id": contact.pk}},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "template_error"
    assert response.json()["line"] == 2 and "line 2" in response.json()["detail"]
    assert Email.objects.count() == 0


def test_send_from_template_refused_keeps_nothing(org, owner):
    template = TemplateFactory(record_type="global", subject="Hi", body_text="x", body_html="")
    response = client_for(owner).post(f"{EMAILS}send-from-template/", {"template": template.pk})
    assert response.status_code == 400 and response.json()["code"] == "no_recipients"
    assert Email.objects.count() == 0 and EmailEvent.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"template": 999999},
        {"template": None},
        {"template": "one"},
        {"template": 1, "regarding": {"type": "contact"}},
        {"template": 1, "to": "a@example.com"},
    ],
)
def test_send_from_template_refuses_bad_input(org, owner, body):
    TemplateFactory(pk=1)
    response = client_for(owner).post(f"{EMAILS}send-from-template/", body)
    assert response.status_code == 400
    assert Email.objects.count() == 0


def test_send_from_template_with_the_wrong_record_type_is_a_template_error(org, owner):
    template = TemplateFactory(record_type="contact")
    response = client_for(owner).post(
        f"{EMAILS}send-from-template/",
        {"template": template.pk, "regarding": {"type": "account", "id": AccountFactory().pk}},
    )
    assert response.status_code == 400 and response.json()["code"] == "template_error"
    assert Email.objects.count() == 0


# --- issue 11: what schemathesis found accepted though the schema refuses it ------------


@pytest.mark.parametrize("field", ["regarding", "sender"])
def test_a_record_reference_with_an_unknown_key_is_refused_naming_the_field(org, owner, field):
    """``{"type", "id", "x"}`` was taken for ``{"type", "id"}``, the extra key dropped."""
    ref = {"type": "user", "id": owner.pk, "x-extra": 42}
    response = client_for(owner).post(EMAILS, {"subject": "Hi", field: ref})
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert "x-extra" in response.json()[field][0]
    assert not Email.objects.exists()


@pytest.mark.parametrize("value", ["null", "maybe", ""])
def test_possible_duplicate_refuses_a_value_that_is_not_a_boolean(org, owner, value):
    """django-filter's BooleanFilter read anything it did not understand as "no filter"."""
    EmailFactory(sender_user=owner)
    response = client_for(owner).get(EMAILS, {"possible_duplicate": value})
    assert response.status_code == 400
    assert list(response.json()) == ["possible_duplicate"]
    assert client_for(owner).get(EMAILS, {"possible_duplicate": "false"}).json()["count"] == 1
