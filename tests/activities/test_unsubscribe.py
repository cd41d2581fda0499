"""The suppression list and the unsubscribe link (RFC 2369 / RFC 8058) of bulk mail."""

from __future__ import annotations

import re

import pytest
from django.core import signing
from django.test import Client

from activities.errors import Conflict, InvalidAddress, InvalidUnsubscribeLink
from activities.links import unsubscribe_token
from activities.mail import build_message
from activities.models import (
    BulkSend,
    Email,
    EmailEvent,
    EmailStatus,
    EventKind,
    SuppressedAddress,
)
from activities.services.bulk import bulk_send_run, bulk_send_start
from activities.services.suppression import suppression_add, suppression_remove, unsubscribe
from common.errors import PermissionDeniedError
from crm.models import Contact
from tests.api import client_for
from tests.factories import ContactFactory, EmailFactory, TemplateFactory, UserFactory

pytestmark = pytest.mark.django_db


def run_job(owner, team_queue, **query) -> BulkSend:
    template = TemplateFactory(subject="News for {{ contact.first_name }}")
    job = bulk_send_start(template=template, sender=team_queue, query=query, actor=owner)
    return bulk_send_run(job_id=job.pk)


def job_email_to(job: BulkSend, address: str) -> Email:
    return Email.objects.get(bulk_send=job, parties__role="to", parties__address=address)


def unsubscribe_path(email: Email) -> str:
    header = build_message(email).message()["List-Unsubscribe"]
    url = re.fullmatch(r"<(.+)>", header).group(1)
    assert url.startswith("http://testserver.example/")
    return url.removeprefix("http://testserver.example")


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.CRM_PUBLIC_URL = "http://testserver.example"


# --- the suppression list --------------------------------------------------------


def test_a_suppressed_address_is_skipped_by_every_job_in_any_case(org, owner, team_queue, staff):
    ContactFactory(email="ann@example.org")
    ContactFactory(email="Bob@Example.org")
    ContactFactory(email="cy@example.org")
    suppression_add(address="  BOB@example.ORG ", actor=staff)

    job = run_job(owner, team_queue)

    recipients = set(
        Email.objects.filter(bulk_send=job).values_list("parties__address", flat=True)
    ) - {team_queue.email}
    assert recipients == {"ann@example.org", "cy@example.org"}
    assert (job.created, job.skipped, job.skipped_by_reason) == (2, 1, {"suppressed": 1})


def test_the_list_is_stored_lower_case_once_per_address(org, staff):
    entry = suppression_add(address="Ann@Example.org", actor=staff, note="asked by phone")
    assert entry.address == "ann@example.org"
    with pytest.raises(Conflict, match="already on the suppression list"):
        suppression_add(address="ANN@example.org", actor=staff)
    assert SuppressedAddress.objects.count() == 1


@pytest.mark.parametrize("address", ["", "not an address", "a@example.org\r\nBcc: x@y.z"])
def test_a_bad_address_is_refused_and_nothing_is_stored(org, staff, address):
    with pytest.raises(InvalidAddress):
        suppression_add(address=address, actor=staff)
    assert not SuppressedAddress.objects.exists()


def test_only_staff_change_the_list(org, owner, staff):
    with pytest.raises(PermissionDeniedError):
        suppression_add(address="ann@example.org", actor=owner)
    entry = suppression_add(address="ann@example.org", actor=staff)
    with pytest.raises(PermissionDeniedError):
        suppression_remove(entry=entry, actor=owner)
    assert SuppressedAddress.objects.filter(pk=entry.pk).exists()


def test_the_api_lists_adds_and_removes_entries(org, staff):
    api = client_for(staff)
    created = api.post(
        "/api/v1/suppressions/",
        {"address": "Ann@Example.org", "reason": "complaint", "note": "spam report"},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json() | {"id": 0, "created_at": ""} == {
        "id": 0,
        "address": "ann@example.org",
        "reason": "complaint",
        "note": "spam report",
        "created_by": "stella",
        "created_at": "",
    }
    again = api.post("/api/v1/suppressions/", {"address": "ANN@example.org"}, format="json")
    assert again.status_code == 409 and "already on the suppression list" in again.json()["detail"]
    bad = api.post("/api/v1/suppressions/", {"address": "nope"}, format="json")
    assert bad.status_code == 400 and "not a valid email address" in bad.json()["detail"]
    unknown = api.post(
        "/api/v1/suppressions/", {"address": "b@example.org", "reason": "x"}, format="json"
    )
    assert unknown.status_code == 400 and "reason" in unknown.json()

    listed = api.get("/api/v1/suppressions/", {"search": "ann@"}).json()
    assert [e["address"] for e in listed["results"]] == ["ann@example.org"]

    entry_id = created.json()["id"]
    assert api.delete(f"/api/v1/suppressions/{entry_id}/").status_code == 204
    assert not SuppressedAddress.objects.exists()
    assert api.delete(f"/api/v1/suppressions/{entry_id}/").status_code == 404


def test_the_api_is_for_staff_only(org, owner):
    SuppressedAddress.objects.create(address="ann@example.org")
    api = client_for(owner)
    assert api.get("/api/v1/suppressions/").status_code == 403
    refused = api.post("/api/v1/suppressions/", {"address": "b@example.org"}, format="json")
    assert refused.status_code == 403
    assert client_for(None).get("/api/v1/suppressions/").status_code in (401, 403)
    assert SuppressedAddress.objects.count() == 1


def test_the_admin_adds_an_address_normalised_and_refuses_a_second_listing(org, client):
    admin = UserFactory(is_superuser=True, is_staff=True)
    client.force_login(admin)
    url = "/admin/activities/suppressedaddress/add/"
    answer = client.post(url, {"address": " Ann@Example.org ", "reason": "manual", "note": ""})
    assert answer.status_code == 302
    assert SuppressedAddress.objects.get().address == "ann@example.org"

    again = client.post(url, {"address": "ANN@example.org", "reason": "manual", "note": ""})
    assert again.status_code == 200
    assert "already on the suppression list" in again.content.decode()
    bad = client.post(url, {"address": "a@b.c\r\nBcc: x@y.z", "reason": "manual", "note": ""})
    assert bad.status_code == 200 and "line breaks" in bad.content.decode()
    assert SuppressedAddress.objects.count() == 1


# --- the unsubscribe link -----------------------------------------------------------


def test_bulk_mail_carries_one_click_unsubscribe_and_single_mail_does_not(org, owner, team_queue):
    ContactFactory(email="ann@example.org")
    job = run_job(owner, team_queue)
    email = job_email_to(job, "ann@example.org")

    message = build_message(email).message()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe_path(email) == f"/unsubscribe/{unsubscribe_token(email.pk)}/"

    single = build_message(EmailFactory()).message()
    assert single["List-Unsubscribe"] is None and single["List-Unsubscribe-Post"] is None


def test_one_click_unsubscribes_every_contact_with_the_address_once(org, owner, team_queue):
    ann = ContactFactory(email="ann@example.org")
    twin = ContactFactory(email="ANN@example.org")  # the same person, entered twice
    other = ContactFactory(email="bob@example.org")
    job = run_job(owner, team_queue)
    email = job_email_to(job, "ann@example.org")
    path = unsubscribe_path(email)
    browser = Client(enforce_csrf_checks=True)  # a mail client's POST carries no CSRF token

    answer = browser.post(path, {"List-Unsubscribe": "One-Click"})

    assert answer.status_code == 200
    assert "You are unsubscribed" in answer.content.decode()
    assert Contact.objects.get(pk=ann.pk).do_not_bulk_email
    assert Contact.objects.get(pk=twin.pk).do_not_bulk_email
    assert not Contact.objects.get(pk=other.pk).do_not_bulk_email
    event = EmailEvent.objects.get(email=email, kind=EventKind.NOTE)
    assert event.data == {"unsubscribed": "ann@example.org", "how": "one-click", "contacts": 2}

    # Staff subscribe Ann again; the old link has been used and changes nothing now.
    Contact.objects.filter(pk=ann.pk).update(do_not_bulk_email=False)
    second = browser.post(path, {"List-Unsubscribe": "One-Click"})
    assert second.status_code == 200 and "Already unsubscribed" in second.content.decode()
    assert not Contact.objects.get(pk=ann.pk).do_not_bulk_email
    assert EmailEvent.objects.filter(email=email, kind=EventKind.NOTE).count() == 1


def test_opening_the_link_asks_first_and_changes_nothing(org, owner, team_queue):
    ann = ContactFactory(email="ann@example.org")
    job = run_job(owner, team_queue)
    path = unsubscribe_path(job_email_to(job, "ann@example.org"))

    page = Client().get(path)  # what a link scanner or a prefetching client does

    assert page.status_code == 200
    assert '<form method="post">' in page.content.decode()
    assert not Contact.objects.get(pk=ann.pk).do_not_bulk_email
    confirmed = Client().post(path)  # the page's button
    assert confirmed.status_code == 200 and "You are unsubscribed" in confirmed.content.decode()
    assert Contact.objects.get(pk=ann.pk).do_not_bulk_email
    assert "Already unsubscribed" in Client().get(path).content.decode()


def test_the_next_job_skips_a_contact_who_unsubscribed(org, owner, team_queue):
    ContactFactory(email="ann@example.org")
    ContactFactory(email="bob@example.org")
    first = run_job(owner, team_queue)
    Client().post(unsubscribe_path(job_email_to(first, "ann@example.org")))

    second = run_job(owner, team_queue)

    assert second.created == 1 and second.skipped_by_reason == {"do_not_bulk_email": 1}
    assert job_email_to(second, "bob@example.org").status == EmailStatus.PENDING_SEND


def forged_tokens(email_id: int, other_id: int) -> list[str]:
    good = unsubscribe_token(email_id)
    value, signature = good.split(":")
    return [
        f"{other_id}:{signature}",  # the signature of another email
        f"{value}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",  # altered
        signing.Signer(key="not-our-secret", salt="activities.unsubscribe").sign(str(email_id)),
        signing.Signer(salt="another.purpose").sign(str(email_id)),
        value,  # no signature
        "garbage",
    ]


def test_a_forged_or_altered_link_is_refused_and_changes_nothing(org, owner, team_queue):
    ann = ContactFactory(email="ann@example.org")
    bob = ContactFactory(email="bob@example.org")
    job = run_job(owner, team_queue)
    email = job_email_to(job, "ann@example.org")
    other = job_email_to(job, "bob@example.org")

    for token in forged_tokens(email.pk, other.pk):
        for method in ("get", "post"):
            answer = getattr(Client(), method)(f"/unsubscribe/{token}/")
            assert answer.status_code == 400, (token, method)
            assert "This link is not valid" in answer.content.decode()

    assert not Contact.objects.filter(pk__in=[ann.pk, bob.pk], do_not_bulk_email=True).exists()
    assert not Email.objects.filter(unsubscribed_at__isnull=False).exists()


def test_a_link_for_mail_that_is_not_bulk_is_refused(org):
    single = EmailFactory()
    answer = Client().post(f"/unsubscribe/{unsubscribe_token(single.pk)}/")
    assert answer.status_code == 400
    with pytest.raises(InvalidUnsubscribeLink):
        unsubscribe(token=unsubscribe_token(single.pk))
