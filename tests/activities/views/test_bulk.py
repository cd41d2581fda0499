"""The bulk send pages with Django's test client: the jobs, the wizard, progress, cancel.

The personas of tests/conftest.py: the owner and the teammate share the Support queue
(``team_queue``), the outsider is in no queue, staff see every job. Jobs are started through the pages and their runs
are left to the tests that need them (``bulk_send_run``), as a worker would run them.
"""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connection
from django.test import Client

from activities.models import (
    BulkSend,
    BulkSendStatus,
    Email,
    EmailEvent,
    EmailStatus,
    SuppressedAddress,
)
from activities.services.bulk import bulk_send_run, bulk_send_start
from common.models import IdempotencyRecord
from crm.models import EmailApproval
from tests.factories import (
    AccountFactory,
    ContactFactory,
    QueueFactory,
    TagFactory,
    TemplateFactory,
)
from tests.pages import signed_in
from tests.services import need_postgresql

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(db):
    return AccountFactory(name="Acme")


@pytest.fixture
def acme_contacts(acme):
    """Six contacts of Acme: two get mail, and one for each skip reason."""
    SuppressedAddress.objects.create(address="gone@acme.example")
    return {
        "ann": ContactFactory(account=acme, first_name="Ann", email="ann@acme.example"),
        "ben": ContactFactory(account=acme, first_name="Ben", email="ben@acme.example"),
        "flagged": ContactFactory(account=acme, email="no@acme.example", do_not_bulk_email=True),
        "suppressed": ContactFactory(account=acme, email="gone@acme.example"),
        "no_address": ContactFactory(account=acme, email=""),
        "duplicate": ContactFactory(account=acme, email="ANN@acme.example"),
    }


@pytest.fixture
def welcome(db):
    return TemplateFactory(
        title="Welcome",
        subject="Welcome {{ contact.first_name }}",
        body_html="<p>Dear {{ contact.full_name }} of {{ account.name }}</p>",
        body_text="Dear {{ contact.full_name }}",
    )


def start_form(template, sender, *, token="token-1", **query) -> dict:
    return {
        "template": template.pk,
        "sender": sender,
        "action": "start",
        "start_token": token,
        **query,
    }


def text_of(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# --- the jobs -------------------------------------------------------------------------


def test_the_jobs_list_shows_only_the_jobs_a_user_may_see(
    org, owner, teammate, outsider, team_queue, staff
):
    template = TemplateFactory(title="Renewal")
    ContactFactory()
    shared = bulk_send_start(template=template, sender=team_queue, query={}, actor=teammate)
    own = bulk_send_start(template=template, sender=outsider, query={}, actor=outsider)

    listed = signed_in(owner).get("/bulk/")
    assert listed.status_code == 200
    assert [job.pk for job in listed.context["page"]] == [shared.pk]
    assert f"Bulk send #{shared.pk}" in text_of(listed)
    assert f"/bulk/{shared.pk}/" in text_of(listed)

    assert signed_in(owner).get(f"/bulk/{own.pk}/").status_code == 404
    assert signed_in(owner).post(f"/bulk/{own.pk}/cancel/").status_code == 404
    assert [job.pk for job in signed_in(outsider).get("/bulk/").context["page"]] == [own.pk]
    assert {job.pk for job in signed_in(staff).get("/bulk/").context["page"]} == {
        shared.pk,
        own.pk,
    }
    assert BulkSend.objects.get(pk=own.pk).status == BulkSendStatus.QUEUED


def test_the_pages_need_a_sign_in(db):
    for url in ("/bulk/", "/bulk/new/", "/bulk/new/audience/", "/bulk/1/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/sign-in/")


# --- the wizard -------------------------------------------------------------------------


def test_the_wizard_offers_the_users_senders_with_their_approval_state(org, owner, team_queue):
    sales = QueueFactory(
        name="Sales",
        email="sales@example.com",
        members=[owner],
        email_router_access_approval=EmailApproval.PENDING,
    )
    QueueFactory(name="Elsewhere", email="elsewhere@example.com")
    TemplateFactory(title="For contacts")
    TemplateFactory(title="For any record", record_type="global")
    TemplateFactory(title="For accounts", record_type="account")

    page = signed_in(owner).get("/bulk/new/")
    assert page.status_code == 200
    keys = [option.key for option in page.context["senders"]]
    assert keys == [f"user:{owner.pk}", f"queue:{sales.pk}", f"queue:{team_queue.pk}"]
    text = text_of(page)
    assert "Elsewhere" not in text
    assert "Sender address is not approved: the queue address sales@example.com is pending " in text
    assert "For contacts" in text and "For any record" in text and "For accounts" not in text
    assert "contacts will get this email" in text  # every contact, before any filter
    # Nothing can be confirmed before a template is chosen.
    assert "Send to" not in text and 'name="start_token"' not in text


def test_the_audience_panel_counts_recipients_and_skips_and_shows_samples(
    org, owner, team_queue, acme, acme_contacts, welcome
):
    ContactFactory(email="other@elsewhere.example")  # not of Acme

    panel = signed_in(owner).get(
        "/bulk/new/audience/",
        {"template": welcome.pk, "sender": f"queue:{team_queue.pk}", "account": acme.pk},
    )
    assert panel.status_code == 200
    text = text_of(panel)
    assert "<strong>2</strong> contacts will get this email, <strong>4</strong> skipped" in text
    assert "6 match the filters" in text
    audience = panel.context["preview"].audience
    assert audience.skipped == {
        "no_address": 1,
        "do_not_bulk_email": 1,
        "suppressed": 1,
        "duplicate_address": 1,
    }
    samples = panel.context["preview"].samples
    assert [sample.contact for sample in samples] == [acme_contacts["ann"], acme_contacts["ben"]]
    assert [sample.subject for sample in samples] == ["Welcome Ann", "Welcome Ben"]
    assert 'sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox"' in text
    assert "Send to 2 contacts" in text
    assert '<p id="audience-status" hx-swap-oob="innerHTML">2 contacts will get' in text
    # Only reads: nothing was started or written.
    assert not BulkSend.objects.exists() and not Email.objects.exists()


def test_the_preview_counts_what_the_job_then_does(
    org, owner, team_queue, acme, acme_contacts, welcome
):
    panel = signed_in(owner).get(
        "/bulk/new/audience/",
        {"template": welcome.pk, "sender": f"queue:{team_queue.pk}", "account": acme.pk},
    )
    audience = panel.context["preview"].audience
    job = bulk_send_start(
        template=welcome, sender=team_queue, query={"account": acme.pk}, actor=owner
    )
    job = bulk_send_run(job_id=job.pk)
    assert (job.total, job.created) == (audience.total, audience.eligible)
    assert job.skipped_by_reason == audience.skipped


def test_a_sample_frame_shows_the_rendered_template_under_its_own_policy(
    org, owner, team_queue, acme_contacts, welcome, outsider
):
    ann = acme_contacts["ann"]
    frame = signed_in(owner).get(
        "/bulk/new/sample/",
        {"template": welcome.pk, "sender": f"queue:{team_queue.pk}", "contact": ann.pk},
    )
    assert frame.status_code == 200
    assert f"Dear {ann.full_name} of Acme" in frame.content.decode()
    assert "script-src 'none'" in frame["Content-Security-Policy"]

    # A sender that is not the user's, or a template it may not see, is a 404.
    refused = signed_in(outsider).get(
        "/bulk/new/sample/",
        {"template": welcome.pk, "sender": f"queue:{team_queue.pk}", "contact": ann.pk},
    )
    assert refused.status_code == 404


def test_the_audience_names_filters_it_cannot_use(org, owner, acme):
    panel = signed_in(owner).get(
        "/bulk/new/", {"created_after": "2026-13-45", "account": acme.pk, "city": "Oslo"}
    )
    assert panel.status_code == 200  # a GET shows the form as it was given
    assert "Enter a valid date." in text_of(panel)

    posted = signed_in(owner).post(
        "/bulk/new/",
        {"created_after": "2026-02-01", "created_before": "2026-01-01", "action": "review"},
    )
    assert posted.status_code == 400
    text = text_of(posted)
    assert "Must be later than" in text and 'aria-invalid="true"' in text
    assert 'value="2026-02-01"' in text and "Choose a template." in text


def test_starting_creates_exactly_one_job_even_when_the_form_is_posted_twice(
    org, owner, team_queue, acme, acme_contacts, welcome, django_capture_on_commit_callbacks
):
    client = signed_in(owner)
    form = start_form(welcome, f"queue:{team_queue.pk}", account=acme.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        first = client.post("/bulk/new/", form)
        second = client.post("/bulk/new/", form)
    job = BulkSend.objects.get()
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == f"/bulk/{job.pk}/"
    assert len(callbacks) == 1  # one run queued
    assert job.template == welcome and job.sender_queue == team_queue and job.created_by == owner
    assert job.query == {"account": acme.pk} and job.total == 6
    assert IdempotencyRecord.objects.filter(user=owner).count() == 1

    # The same form token with other choices is refused, and starts nothing.
    changed = client.post("/bulk/new/", {**form, "city": "Oslo"})
    assert changed.status_code == 409
    assert f"already started bulk send #{job.pk} with other choices" in text_of(changed)
    # A fresh token starts a second job.
    client.post("/bulk/new/", {**form, "start_token": "token-2"})
    assert BulkSend.objects.count() == 2


def test_reviewing_without_javascript_shows_the_count_and_the_confirm_button(
    org, owner, team_queue, acme, acme_contacts, welcome
):
    review = signed_in(owner).post(
        "/bulk/new/",
        {"template": welcome.pk, "sender": f"queue:{team_queue.pk}", "account": acme.pk,
         "action": "review"},
    )  # fmt: skip
    assert review.status_code == 200
    text = text_of(review)
    assert "Send to 2 contacts" in text and 'name="start_token"' in text
    assert "Welcome Ann" in text
    assert not BulkSend.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_of_one_form_start_one_job(
    org, owner, team_queue, acme, acme_contacts, welcome
):
    need_postgresql()
    form = start_form(welcome, f"queue:{team_queue.pk}", token="together", account=acme.pk)
    barrier = threading.Barrier(4)
    answers: list[tuple[int, str]] = []
    failures: list[str] = []

    def post() -> None:
        try:
            client = signed_in(owner)
            barrier.wait(timeout=30)
            response = client.post("/bulk/new/", form)
            answers.append((response.status_code, response.get("Location", "")))
        except Exception as exc:
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    job = BulkSend.objects.get()
    assert answers == [(302, f"/bulk/{job.pk}/")] * 4
    assert IdempotencyRecord.objects.count() == 1


def test_a_start_from_an_unapproved_queue_is_refused_in_words_and_keeps_the_input(
    org, owner, acme, acme_contacts, welcome
):
    sales = QueueFactory(
        name="Sales",
        email="sales@example.com",
        members=[owner],
        email_router_access_approval=EmailApproval.PENDING,
    )
    TagFactory(name="vip")
    refused = signed_in(owner).post(
        "/bulk/new/", start_form(welcome, f"queue:{sales.pk}", account=acme.pk, tag="vip")
    )
    assert refused.status_code == 400
    text = text_of(refused)
    assert 'id="sender-error"' in text
    assert "the queue address sales@example.com is pending approval" in text
    assert f'value="queue:{sales.pk}" checked' in text
    assert (
        f'<option value="{acme.pk}" selected>' in text and '<option value="vip" selected>' in text
    )
    assert not BulkSend.objects.exists() and not IdempotencyRecord.objects.exists()


def test_a_template_that_does_not_render_is_refused_next_to_the_template(
    org, owner, team_queue, acme, acme_contacts
):
    broken = TemplateFactory(title="Broken", body_html="<p>{% if %}</p>")
    client = signed_in(owner)
    panel = client.get(
        "/bulk/new/audience/",
        {"template": broken.pk, "sender": f"queue:{team_queue.pk}", "account": acme.pk},
    )
    assert "The template cannot be rendered: template error in HTML body, line 1" in text_of(panel)

    refused = client.post(
        "/bulk/new/", start_form(broken, f"queue:{team_queue.pk}", account=acme.pk)
    )
    assert refused.status_code == 400
    assert 'id="template-error"' in text_of(refused)
    assert "template error in HTML body, line 1" in text_of(refused)
    assert not BulkSend.objects.exists()


def test_an_empty_audience_is_refused_in_words(org, owner, team_queue, acme, welcome):
    ContactFactory(account=acme, do_not_bulk_email=True)
    client = signed_in(owner)
    nobody = client.post(
        "/bulk/new/", start_form(welcome, f"queue:{team_queue.pk}", city="Nowhere")
    )
    assert nobody.status_code == 400
    assert "no contact matches these filters" in text_of(nobody)
    flagged = client.post(
        "/bulk/new/", start_form(welcome, f"queue:{team_queue.pk}", account=acme.pk)
    )
    assert flagged.status_code == 400
    text = text_of(flagged)
    assert 'role="alert"' in text
    assert "none of the 1 matching contacts can get bulk email (1 do not bulk email)" in text
    assert not BulkSend.objects.exists() and not IdempotencyRecord.objects.exists()


def test_a_sender_the_user_may_not_use_is_refused(org, owner, outsider, team_queue, welcome):
    ContactFactory()
    refused = signed_in(outsider).post("/bulk/new/", start_form(welcome, f"queue:{team_queue.pk}"))
    assert refused.status_code == 400
    assert "Select a valid choice." in text_of(refused)
    assert not BulkSend.objects.exists()


# --- progress and cancel ------------------------------------------------------------------


def test_progress_is_polled_until_the_job_is_done(
    org, owner, team_queue, acme, acme_contacts, welcome, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    job = bulk_send_start(
        template=welcome, sender=team_queue, query={"account": acme.pk}, actor=owner
    )
    client = signed_in(owner)
    page = client.get(f"/bulk/{job.pk}/")
    assert page.status_code == 200
    text = text_of(page)
    assert 'hx-trigger="every 2s"' in text and "Waiting for a worker" in text
    assert f'href="/mail/sent/?bulk_send={job.pk}"' in text
    signature = page.context["progress"].signature

    htmx = {"HTTP_HX_REQUEST": "true"}
    same = client.get(f"/bulk/{job.pk}/", {"v": signature}, **htmx)
    assert same.status_code == 204

    bulk_send_run(job_id=job.pk)  # written, not yet delivered
    writing = client.get(f"/bulk/{job.pk}/", {"v": signature}, **htmx)
    assert writing.status_code == 200
    text = text_of(writing)
    assert "All emails are written; 2 still to deliver." in text
    assert 'hx-trigger="every 2s"' in text and "bulk-actions" not in text

    Email.objects.filter(bulk_send=job).update(status=EmailStatus.SENT)
    done = client.get(f"/bulk/{job.pk}/", {"v": signature}, **htmx)
    text = text_of(done)
    assert "Done: 2 sent, 4 skipped." in text
    assert "hx-trigger" not in text  # polling stops
    assert 'id="bulk-actions" class="actions" hx-swap-oob="true"' in text
    assert "Cancel this bulk send" not in text


def test_a_completed_job_still_delivering_at_a_send_rate_says_so(
    org, owner, team_queue, acme, acme_contacts, welcome
):
    team_queue.send_rate_per_minute = 1
    team_queue.save()
    job = bulk_send_start(
        template=welcome, sender=team_queue, query={"account": acme.pk}, actor=owner
    )
    bulk_send_run(job_id=job.pk)
    text = text_of(signed_in(owner).get(f"/bulk/{job.pk}/"))
    assert "Support sends at most 1 message a minute: about 2 minutes to go." in text
    assert "Cancel this bulk send" in text


def test_cancel_withdraws_what_is_not_yet_sent_and_is_refused_once_done(
    org, owner, teammate, team_queue, acme, acme_contacts, welcome
):
    job = bulk_send_start(
        template=welcome, sender=team_queue, query={"account": acme.pk}, actor=owner
    )
    bulk_send_run(job_id=job.pk)
    client = signed_in(teammate)  # a teammate in the sending queue
    canceled = client.post(f"/bulk/{job.pk}/cancel/", follow=True)
    assert canceled.status_code == 200
    assert f"Bulk send #{job.pk} canceled" in text_of(canceled)
    job.refresh_from_db()
    assert job.status == BulkSendStatus.CANCELED and job.canceled_at is not None
    emails = Email.objects.filter(bulk_send=job)
    assert emails.count() == 2
    assert set(emails.values_list("status", flat=True)) == {EmailStatus.CANCELED}
    events = EmailEvent.objects.filter(email__bulk_send=job, to_status=EmailStatus.CANCELED)
    assert events.count() == 2 and {e.actor for e in events} == {teammate}

    again = client.post(f"/bulk/{job.pk}/cancel/")
    assert again.status_code == 409
    assert "Cannot cancel a bulk job that is canceled." in text_of(again)
    assert EmailEvent.objects.filter(email__bulk_send=job, to_status="canceled").count() == 2
    assert client.get(f"/bulk/{job.pk}/cancel/").status_code == 405
