"""The staff pages, first slice: sign in and out, and the mail list."""

from __future__ import annotations

import pytest
from django.test import Client

from activities.models import Direction, Email, EmailStatus
from activities.services.emails import email_create
from tests.factories import EmailFactory, EmailPartyFactory, QueueFactory
from tests.pages import signed_in

pytestmark = pytest.mark.django_db


def subjects(response) -> list[str]:
    return [email.subject for email, _ in response.context["rows"]]


def test_pages_need_a_sign_in_and_the_demo_login_works(org, owner):
    owner.set_password("demo")
    owner.save()
    client = Client()
    page = client.get("/")
    assert page.status_code == 302 and page["Location"] == "/mail/"
    assert client.get("/mail/")["Location"] == "/sign-in/?next=/mail/"

    wrong = client.post("/sign-in/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and "didn't match" in wrong.content.decode()
    right = client.post(
        "/sign-in/?next=/mail/sent/",
        {"username": "alice", "password": "demo", "next": "/mail/sent/"},
    )
    assert right.status_code == 302 and right["Location"] == "/mail/sent/"
    assert "Alice Archer" in client.get("/mail/").content.decode()

    out = client.post("/sign-out/")
    assert out.status_code == 302 and out["Location"] == "/sign-in/"
    assert client.get("/mail/").status_code == 302


def test_tabs_sort_mail_by_where_it_is(org, owner, team_queue):
    draft = EmailFactory(sender_user=owner, subject="a draft")
    EmailFactory(sender_user=owner, subject="waiting", status=EmailStatus.PENDING_SEND)
    EmailFactory(
        sender_user=owner,
        subject="bounced",
        status=EmailStatus.FAILED,
        last_error="550 no such user",
    )
    EmailFactory(
        sender_queue=team_queue, sender_user=None, subject="went out", status=EmailStatus.SENT
    )
    EmailFactory(
        sender_user=owner,
        subject="came in",
        status=EmailStatus.RECEIVED,
        direction=Direction.INCOMING,
    )
    EmailPartyFactory(email=draft, role="to", address="zoe@example.org", name="Zoe Zed")
    client = signed_in(owner)

    assert subjects(client.get("/mail/drafts/")) == ["a draft"]
    outbox = client.get("/mail/")
    assert sorted(subjects(outbox)) == ["bounced", "waiting"]
    assert "550 no such user" in outbox.content.decode()  # a failed email shows why
    assert 'class="badge badge-failed"' in outbox.content.decode()
    assert subjects(client.get("/mail/sent/")) == ["went out"]
    assert subjects(client.get("/mail/received/")) == ["came in"]
    assert "Zoe Zed" in client.get("/mail/drafts/").content.decode()
    assert client.get("/mail/spam/").status_code == 404


def test_the_list_shows_only_what_the_user_may_see(org, owner, team_queue, outsider, staff):
    EmailFactory(sender_user=outsider, subject="not for alice", status=EmailStatus.SENT)
    EmailFactory(
        sender_queue=team_queue, sender_user=None, subject="the team's", status=EmailStatus.SENT
    )
    assert subjects(signed_in(owner).get("/mail/sent/")) == ["the team's"]
    assert sorted(subjects(signed_in(staff).get("/mail/sent/"))) == ["not for alice", "the team's"]


def test_search_filters_and_pages(org, owner, team_queue):
    other = QueueFactory(name="Sales", members=[owner])
    for i in range(30):
        email_create(
            actor=owner, sender=team_queue, subject=f"Renewal {i}", to=["bob@customer.example"]
        )
    email_create(actor=owner, sender=other, subject="Quote", to=["cy@buyer.example"])
    client = signed_in(owner)

    first = client.get("/mail/drafts/")
    assert len(subjects(first)) == 25 and "Page 1 of 2 · 31 emails" in first.content.decode()
    second = client.get("/mail/drafts/", {"page": 2})
    assert len(subjects(second)) == 6
    assert subjects(client.get("/mail/drafts/", {"q": "buyer.example"})) == ["Quote"]
    assert sorted(subjects(client.get("/mail/drafts/", {"q": "renewal 7"}))) == [
        "Renewal 17",
        "Renewal 27",
        "Renewal 7",
    ]
    assert subjects(client.get("/mail/drafts/", {"sender_queue": other.pk})) == ["Quote"]
    by_queue_paged = client.get("/mail/drafts/", {"sender_queue": team_queue.pk, "page": 2})
    assert f"sender_queue={team_queue.pk}" in by_queue_paged.content.decode()  # pages keep filters
    assert len(subjects(by_queue_paged)) == 5


def test_a_filter_that_does_not_parse_is_a_400_naming_it(org, owner):
    EmailFactory(sender_user=owner, subject="x")
    answer = signed_in(owner).get("/mail/drafts/", {"sender_queue": "abc"})
    assert answer.status_code == 400
    assert "sender_queue" in answer.content.decode() and answer.context["rows"] == []


def test_the_outbox_filters_by_status(org, owner):
    EmailFactory(sender_user=owner, subject="waiting", status=EmailStatus.PENDING_SEND)
    EmailFactory(sender_user=owner, subject="bounced", status=EmailStatus.FAILED)
    assert subjects(signed_in(owner).get("/mail/", {"status": "failed"})) == ["bounced"]
    assert Email.objects.count() == 2


def test_the_from_column_names_the_queue_the_person_or_the_outside_sender(org, owner, team_queue):
    EmailFactory(sender_user=owner, subject="mine", status=EmailStatus.SENT)
    EmailFactory(sender_user=None, sender_queue=team_queue, subject="ours", status=EmailStatus.SENT)
    EmailFactory(
        sender_user=owner,
        subject="theirs",
        direction=Direction.INCOMING,
        status=EmailStatus.RECEIVED,
        from_address="zoe@customer.example",
        from_name="Zoe Zed",
    )
    client = signed_in(owner)
    sent = client.get("/mail/sent/").content.decode()
    assert "<td>Alice Archer</td>" in sent and "<td>Support</td>" in sent
    received = client.get("/mail/received/").content.decode()
    assert "<td>Zoe Zed</td>" in received and "<td>Alice Archer</td>" not in received
