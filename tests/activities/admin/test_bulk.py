"""The admin of bulk jobs, driven through its real views with the test client."""

from __future__ import annotations

import pytest
from django.urls import reverse

from activities.models import BulkSend, BulkSendStatus, Email, EmailStatus
from activities.services.bulk import bulk_send_run, bulk_send_start
from tests.api import count_queries
from tests.factories import AccountFactory, ContactFactory, TemplateFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:activities_bulksend_changelist")


@pytest.fixture
def template():
    return TemplateFactory(title="November news")


def start(template, sender, actor, query=None) -> BulkSend:
    return bulk_send_start(template=template, sender=sender, query=query or {}, actor=actor)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def run_with_outcomes(template, team_queue, owner, *, sent: int, failed: int) -> BulkSend:
    account = AccountFactory()
    ContactFactory.create_batch(sent + failed, account=account)
    ContactFactory(account=account, email="")
    job = bulk_send_run(job_id=start(template, team_queue, owner, {"account": account.pk}).pk)
    emails = list(Email.objects.filter(bulk_send=job).order_by("pk"))
    Email.objects.filter(pk__in=[e.pk for e in emails[:sent]]).update(status=EmailStatus.SENT)
    Email.objects.filter(pk__in=[e.pk for e in emails[sent:]]).update(status=EmailStatus.FAILED)
    return job


def test_the_list_shows_each_jobs_progress(org, superuser_client, owner, team_queue, template):
    job = run_with_outcomes(template, team_queue, owner, sent=3, failed=2)

    response = superuser_client.get(CHANGELIST)

    assert response.status_code == 200
    row = next(r for r in response.context["cl"].result_list if r.pk == job.pk)
    assert (row.total, row.created, row.sent_count, row.failed_count, row.skipped) == (
        6,
        5,
        3,
        2,
        1,
    )
    html = response.content.decode()
    for column in ("column-total", "column-created", "column-sent", "column-failed"):
        assert column in html
    assert "column-skipped" in html


def test_the_list_costs_the_same_queries_for_few_and_many_jobs(
    org, superuser_client, owner, team_queue, template
):
    run_with_outcomes(template, team_queue, owner, sent=1, failed=1)
    _, few = count_queries(lambda: superuser_client.get(CHANGELIST))
    for _ in range(8):
        run_with_outcomes(template, team_queue, owner, sent=1, failed=1)
        start(template, owner, owner)

    response, many = count_queries(lambda: superuser_client.get(CHANGELIST))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 17
    assert many == few


def test_the_list_filters_by_status(org, superuser_client, owner, team_queue, template):
    queued = start(template, team_queue, owner)
    done = bulk_send_run(job_id=start(template, team_queue, owner).pk)

    response = superuser_client.get(CHANGELIST + "?status__exact=queued")

    assert [j.pk for j in response.context["cl"].result_list] == [queued.pk]
    assert done.pk not in [j.pk for j in response.context["cl"].result_list]


def test_the_change_page_is_read_only_and_links_to_the_jobs_emails(
    org, superuser_client, owner, team_queue, template
):
    job = run_with_outcomes(template, team_queue, owner, sent=2, failed=1)
    other = run_with_outcomes(template, team_queue, owner, sent=1, failed=0)

    page = superuser_client.get(reverse("admin:activities_bulksend_change", args=[job.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html  # nothing to edit
    link = f"/admin/activities/email/?bulk_send__id__exact={job.pk}"
    assert link in html
    assert "no_address: 1" in html
    fields = {
        line.field["name"]: line.contents()
        for fieldset in page.context["adminform"]
        for row in fieldset
        for line in row
    }
    assert (fields["total"], fields["created"], fields["sent"], fields["failed"]) == (
        "4",
        "3",
        "2",
        "1",
    )
    emails = superuser_client.get(link)
    assert emails.status_code == 200
    listed = {e.pk for e in emails.context["cl"].result_list}
    assert listed == set(Email.objects.filter(bulk_send=job).values_list("pk", flat=True))
    assert not listed & set(Email.objects.filter(bulk_send=other).values_list("pk", flat=True))


def test_a_job_cannot_be_added_changed_or_deleted_in_the_admin(
    org, superuser_client, owner, team_queue, template
):
    job = start(template, team_queue, owner)

    assert superuser_client.get(reverse("admin:activities_bulksend_add")).status_code == 403
    delete = reverse("admin:activities_bulksend_delete", args=[job.pk])
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
    assert BulkSend.objects.filter(pk=job.pk).exists()


def test_the_cancel_action_cancels_running_jobs_and_names_each_refusal(
    org, superuser_client, owner, team_queue, template
):
    ContactFactory.create_batch(3)
    queued = start(template, team_queue, owner)
    done = bulk_send_run(job_id=start(template, team_queue, owner).pk)
    Email.objects.filter(bulk_send=done).update(status=EmailStatus.SENT)  # all delivered

    response = superuser_client.post(
        CHANGELIST,
        {"action": "cancel", "_selected_action": [queued.pk, done.pk]},
        follow=True,
    )

    assert response.status_code == 200
    messages = messages_of(response)
    assert "1 bulk job(s) canceled." in messages
    assert any("cannot cancel a bulk job that is completed" in m for m in messages)
    queued.refresh_from_db()
    done.refresh_from_db()
    assert queued.status == BulkSendStatus.CANCELED and queued.canceled_at is not None
    assert done.status == BulkSendStatus.COMPLETED and done.canceled_at is None
    assert Email.objects.filter(bulk_send=done, status=EmailStatus.SENT).count() == 3
