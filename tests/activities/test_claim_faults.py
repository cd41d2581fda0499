"""Twenty external senders claiming over HTTP, a quarter of them killed mid-run.

Each claimer is an OS process of its own (``tests/claim_client.py``, the standard
library only) speaking to pytest-django's live server with its own API token: claim a
few emails, "send" them, report each outcome (half per email, half in one batch call).
Five, chosen at random, are SIGKILLed at random moments, each while it holds a lease
if it can be caught holding one. Meanwhile this test runs the sweep's lease revocation
(``leases_revoke_expired``), as beat would: the dead claimers' leases run out, their
emails go back to ``pending_send`` flagged as possible duplicates, and the survivors
claim and finish them. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from activities.models import Email, EmailEvent, EmailStatus
from activities.services.leases import leases_revoke_expired
from crm.models import OutgoingDelivery
from tests.api import client_for
from tests.celery_worker import wait_for
from tests.factories import QueueFactory, UserFactory, pending_queue_emails

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EMAILS, CLAIMERS, KILLED, BATCH, LEASE_SECONDS = 400, 20, 5, 5, 3


@dataclass(eq=False)
class Claimer:
    index: int
    user: object
    log: Path
    proc: subprocess.Popen | None = None
    killed: bool = False
    lines: list[list[str]] = field(default_factory=list)

    def read(self) -> list[list[str]]:
        self.lines = [line.split() for line in self.log.read_text().splitlines() if line]
        return self.lines

    def holds_a_lease(self) -> bool:
        lines = self.read()
        return bool(lines) and lines[-1][0] == "claimed"

    def pairs(self, kind: str) -> set[tuple[int, int]]:
        return {(int(line[1]), int(line[2])) for line in self.lines if line[0] == kind}


def test_twenty_claimers_with_five_killed_send_every_email_once_and_flag_only_lost_claims(
    org, live_server, tmp_path
):
    seed = random.randrange(1 << 30)
    print(f"random seed {seed}")
    rng = random.Random(seed)
    users = [UserFactory(username=f"claimer{i}") for i in range(CLAIMERS)]
    relay = QueueFactory(name="Relay", members=users, outgoing_delivery=OutgoingDelivery.EXTERNAL)
    pending_queue_emails(relay, EMAILS, tag="claim-fault")
    stop = tmp_path / "stop"
    claimers = [Claimer(i, user, tmp_path / f"claimer-{i}.log") for i, user in enumerate(users)]
    for claimer in claimers:
        claimer.log.touch()
        claimer.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.claim_client",
                live_server.url,
                Token.objects.create(user=claimer.user).key,
                str(claimer.log),
                str(stop),
                str(BATCH),
                str(LEASE_SECONDS),
                "batch" if claimer.index % 2 else "single",
            ],
            cwd=settings.BASE_DIR,
            start_new_session=True,
        )

    def sent() -> int:
        return Email.objects.filter(status=EmailStatus.SENT).count()

    def sweep_and(predicate):
        def check():
            leases_revoke_expired()
            return predicate()

        return check

    victims = rng.sample(claimers, KILLED)
    at_sent = sorted(rng.sample(range(EMAILS // 10, EMAILS * 3 // 4), KILLED))
    try:
        for victim, threshold in zip(victims, at_sent, strict=True):
            wait_for(sweep_and(lambda t=threshold: sent() >= t), what=f"{threshold} sent")
            deadline = time.monotonic() + 2
            while not victim.holds_a_lease() and time.monotonic() < deadline:
                time.sleep(0.002)
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)
            victim.killed = True
        wait_for(
            sweep_and(lambda: sent() == EMAILS),
            what="every email sent by the survivors",
            timeout=60,
            interval=0.25,
        )
    finally:
        stop.touch()
        for claimer in claimers:
            try:
                claimer.proc.wait(20)
            except subprocess.TimeoutExpired:
                claimer.proc.kill()
                claimer.proc.wait(10)
    for claimer in claimers:
        claimer.read()
        print(f"claimer {claimer.index} killed={claimer.killed}: {claimer.lines[-3:]}")
    survivors = [c for c in claimers if not c.killed]
    killed = [c for c in claimers if c.killed]
    assert [c.proc.returncode for c in survivors] == [0] * (CLAIMERS - KILLED)
    assert not [line for c in claimers for line in c.lines if line[0] == "error"]

    # Every email sent, recorded once, by the report on its latest lease.
    emails = {pk: token for pk, token in Email.objects.values_list("pk", "lease_token")}
    assert set(Email.objects.values_list("status", flat=True)) == {EmailStatus.SENT}
    sent_events = list(
        EmailEvent.objects.filter(to_status=EmailStatus.SENT).values_list("email_id", "data")
    )
    assert len(sent_events) == len({pk for pk, _ in sent_events}) == EMAILS
    recorded_with = {pk: data["lease_token"] for pk, data in sent_events}
    assert recorded_with == emails  # a report on an older lease was never taken

    # What the claimers saw adds up with what the database says.
    recorded = set().union(*(c.pairs("recorded") for c in claimers))
    assert recorded <= set(recorded_with.items())
    assert len({pk for pk, _ in recorded}) == len(recorded)  # each recorded once
    # Only a killed claimer can miss the answer to a report it made: its last batch.
    assert EMAILS - len(recorded) <= KILLED * BATCH
    refused = set().union(*(c.pairs("refused") for c in claimers))
    assert {line[3] for c in claimers for line in c.lines if line[0] == "refused"} <= {
        "stale_lease"
    }
    assert not refused & set(recorded_with.items())

    # The leases that ran out: exactly the flagged emails, claimed again and sent.
    revoked = set(
        EmailEvent.objects.filter(
            actor_label="sweep",
            from_status=EmailStatus.SENDING,
            to_status=EmailStatus.PENDING_SEND,
        ).values_list("email_id", flat=True)
    )
    flagged = set(Email.objects.filter(possible_duplicate=True).values_list("pk", flat=True))
    assert flagged == revoked
    assert all(emails[pk] >= 3 for pk in revoked)  # claimed, revoked, claimed again
    assert all(token == 1 for pk, token in emails.items() if pk not in revoked)
    # Every lease a killed claimer held unreported was taken back.
    lost = {
        (claimer, pk, token)
        for claimer in killed
        for pk, token in claimer.pairs("claimed") - claimer.pairs("recorded")
        if recorded_with[pk] != token
    }
    assert lost, "no killed claimer held a lease: the kills missed their point"
    assert {pk for _, pk, _ in lost} <= revoked
    # A survivor refused a report only for a lease that had run out.
    for pk, token in refused:
        assert pk in revoked and recorded_with[pk] != token

    # The dead claimers' old tokens, reported now: refused, and nothing changes.
    before = (
        list(Email.objects.order_by("pk").values_list("status", "lease_token", "modified_at")),
        EmailEvent.objects.count(),
    )
    for claimer, pk, token in sorted(lost, key=lambda row: row[1]):
        api = client_for(claimer.user)
        answer = api.post(
            f"/api/v1/emails/{pk}/delivery-result/",
            {"lease_token": str(token), "outcome": "sent"},
            format="json",
        )
        assert (answer.status_code, answer.json()["code"]) == (409, "stale_lease")
        answer = api.post(
            "/api/v1/emails/delivery-results/",
            {"results": [{"id": pk, "lease_token": str(token), "outcome": "failed"}]},
            format="json",
        )
        assert answer.status_code == 200
        [outcome] = answer.json()["results"]
        assert (outcome["recorded"], outcome["code"]) == (False, "stale_lease")
    assert before == (
        list(Email.objects.order_by("pk").values_list("status", "lease_token", "modified_at")),
        EmailEvent.objects.count(),
    )
