"""The load run (``bin/bench-load``, docs/bench.md "Load run"), briefly, and its checker.

The smoke run is the real thing, small: gunicorn with config/gunicorn.py on a PostgreSQL
database of its own, a real Celery worker and beat, the bench's SMTP sink, locust with
10 users for 15 s. It must end with zero 5xx, no unexpected answer and every write
there as answered. Timings are printed, never asserted.

The checker is also run on writes that are wrong on purpose, so that "zero lost writes"
is a finding and not a checker that cannot fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from activities.models import EmailStatus
from activities.services.attachments import attachment_store
from bench import load, load_db
from tests.factories import EmailFactory
from tests.services import need_network_broker, need_postgresql

USERS, SECONDS, EMAILS = 10, 15, 200


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    need_postgresql()
    need_network_broker()
    tmp_path = tmp_path_factory.mktemp("load")
    parts = urlsplit(os.environ["DATABASE_URL"])
    pg_url = urlunsplit(parts._replace(path="/" + parts.path.lstrip("/") + "_load"))
    command = [
        sys.executable,
        "-m",
        "bench.load",
        "--users",
        str(USERS),
        "--duration",
        str(SECONDS),
        "--spawn-rate",
        "10",
        "--emails",
        str(EMAILS),
        "--settle",
        "60",
        "--pg-url",
        pg_url,
        # The suite's broker (a Redis database of its own in CI); the run flushes it.
        "--broker-url",
        settings.CELERY_BROKER_URL,
        "--out",
        str(tmp_path / "load.md"),
        "--data-dir",
        str(tmp_path / "data"),
    ]
    proc = subprocess.run(
        command, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=300, check=False
    )
    print(proc.stdout)
    print(proc.stderr[-5000:])
    result = json.loads((tmp_path / "load.json").read_text()) if proc.returncode < 2 else {}
    return {
        "proc": proc,
        "result": result,
        "markdown": (tmp_path / "load.md").read_text() if result else "",
    }


@pytest.fixture
def run(smoke):
    assert smoke["proc"].returncode == 0, smoke["proc"].stdout + smoke["proc"].stderr[-5000:]
    return smoke


@pytest.mark.slow
def test_the_load_run_prints_its_table(run):
    out = run["proc"].stdout
    header = out.splitlines()[0].split()
    assert header[:5] == ["request", "kind", "requests", "failures", "5xx"]
    assert "p50 ms" in out and "p99 ms" in out and "max ms" in out
    kinds = {row["kind"] for row in run["result"]["rows"]}
    # Every kind of user did its first thing: sign in, claim, list.
    assert {"page sign-in", "api claim", "overall"} <= kinds
    assert any(line.startswith("overall ") for line in out.splitlines())
    assert "server: gunicorn" in out and f"users: {USERS} " in out and "machine: " in out
    assert "| overall |" in run["markdown"]
    meta = run["result"]["meta"]
    assert meta["users"] == USERS and meta["emails_in_table"] > EMAILS


@pytest.mark.slow
def test_the_load_run_got_no_5xx_and_no_unexpected_answer(run):
    result = run["result"]
    overall = result["rows"][-1]
    assert overall["requests"] > 0
    assert overall["5xx"] == 0, result["client_errors"]
    assert result["unexpected"] == [], result["client_errors"]
    assert result["server_error_lines"] == []
    assert result["ok"]


@pytest.mark.slow
def test_every_write_of_the_load_run_is_there_as_answered(run):
    writes = run["result"]["writes"]
    counts = writes["counts"]
    assert writes["lost_writes"] == 0, writes["problems"]
    # The check had something to check.
    assert counts["created_over_api"] > 0 and counts["sent_through_worker"] > 0
    assert counts["worker_sends_by_status"] == {"sent": counts["sent_through_worker"]}
    assert counts["sink_received"] == counts["sent_through_worker"]
    assert counts["sink_duplicates"] == 0


# --- the checker, on writes that are wrong on purpose -----------------------------------


@pytest.fixture
def sink():
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.sink"],
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, port, control = proc.stdout.readline().split()
        yield int(port), int(control)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def deliver(port: int, message_id: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.net", "x"
    message["Message-ID"] = message_id
    message.set_content("hello")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message)


@pytest.mark.slow
def test_the_checker_reports_each_kind_of_lost_or_wrong_write(db, sink, tmp_path):
    port, control = sink
    good = EmailFactory(subject="Fine CRM:1", status=EmailStatus.SENT, message_id="<good@x>")
    twice = EmailFactory(subject="Twice", status=EmailStatus.SENT, message_id="<twice@x>")
    stuck = EmailFactory(subject="Stuck", status=EmailStatus.PENDING_SEND, message_id="<s@x>")
    renamed = EmailFactory(subject="What the database has")
    draft = EmailFactory(subject="With a file")
    link, _ = attachment_store(owner=draft, source=b"stored bytes", filename="a.bin")
    composed = EmailFactory(subject="Typed here CRM:7", status=EmailStatus.SENT, message_id="<c@x>")
    for message_id in ("<good@x>", "<twice@x>", "<twice@x>", "<c@x>"):
        deliver(port, message_id)
    other = hashlib.sha256(b"other bytes").hexdigest()
    journal = {
        "subjects": {
            str(good.pk): "Fine CRM:1",
            str(twice.pk): "Twice",
            str(stuck.pk): "Stuck",
            str(renamed.pk): "What the answer said",
            "987654321": "Never written",
        },
        "composed": {str(composed.pk): "Typed here"},
        "sent_worker": [good.pk, twice.pk, stuck.pk, composed.pk],
        "sent_external": [],
        "reported_sent": [renamed.pk],
        "claimed": [renamed.pk, renamed.pk, good.pk],
        "replay_mismatches": [twice.pk],
        "uploads": {
            str(link.pk): {
                "email": draft.pk,
                "size": len(b"stored bytes"),
                "sha256": other,
                "answered_sha256": other,
            }
        },
    }
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(journal))

    checked = load_db.verify(journal=str(path), control_port=control, settle_seconds=0)

    assert checked["problem_counts"] == {
        "missing": 1,
        "wrong_subject": 1,
        "not_sent": 1,
        "sink_missing": 1,
        "sink_duplicate": 1,
        "external_lost": 1,
        "upload": 1,
        "double_claim": 1,
        "replay": 1,
    }
    problems = checked["problems"]
    assert "987654321" in problems["missing"][0]
    assert f"email {renamed.pk}:" in problems["wrong_subject"][0]
    assert f"email {stuck.pk} is pending_send" in problems["not_sent"]
    assert f"email {stuck.pk}" in problems["sink_missing"][0]
    assert "received 2 times" in problems["sink_duplicate"][0]
    assert f"email {renamed.pk} reported sent is draft" in problems["external_lost"]
    assert f"attachment {link.pk}:" in problems["upload"][0]
    assert f"email {twice.pk}:" in problems["replay"][0]
    assert checked["lost_writes"] == 9
    assert checked["counts"]["sink_received"] == 4


def test_the_table_counts_5xx_and_answers_a_kind_does_not_expect():
    journal = {
        "started": 100.0,
        "stopped": 110.0,
        "latencies": {"api send": [5.0, 7.0, 30.0], "api list emails": [1.0, 2.0, 3.0, 4.0]},
        "statuses": {
            "api send": {"202": 1, "500": 1, "409": 1},
            "api list emails": {"200": 3, "404": 1},
        },
    }
    rows = load.summarise(journal)
    by = {row["kind"]: row for row in rows}
    assert (by["api send"]["failures"], by["api send"]["5xx"]) == (2, 1)
    assert (by["api list emails"]["failures"], by["api list emails"]["5xx"]) == (0, 0)
    assert rows[-1]["kind"] == "overall"
    assert (rows[-1]["requests"], rows[-1]["failures"], rows[-1]["5xx"]) == (7, 2, 1)
    assert rows[-1]["rps"] == pytest.approx(0.7)
    assert (by["api list emails"]["p50_ms"], by["api list emails"]["p99_ms"]) == (2.0, 4.0)
    assert by["api send"]["max_ms"] == 30.0
    assert load.unexpected(rows) == ["api send: 409 x 1", "api send: 500 x 1"]
    assert load.expected_refusals(rows) == ["api list emails: 404 x 1"]
    assert "overall" in load.text_table(rows).splitlines()[-1]


def test_the_server_side_figures_come_from_gunicorns_access_log():
    log = "\n".join(
        [
            "[2026-12-03 11:06:26 +0000] [1] [INFO] Booting worker with pid: 2",
            '127.0.0.1 "GET /health/ HTTP/1.1" 200 16 900ms request_id=a',
            '127.0.0.1 "GET /api/v1/emails/?page=2 HTTP/1.1" 200 5120 40ms request_id=b',
            '127.0.0.1 "POST /mail/new/ HTTP/1.1" 302 0 70ms request_id=c',
            '127.0.0.1 "POST /api/v1/emails/ HTTP/1.1" 500 145 10ms request_id=d',
        ]
    )
    served = load.server_side(log)
    assert (served["requests"], served["5xx"]) == (3, 1)
    assert (served["p50_ms"], served["max_ms"]) == (40.0, 70.0)
