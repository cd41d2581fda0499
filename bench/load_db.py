"""The load run's database side, in child processes (``bench.child``): building the data
before the run, and checking after it that every write the users got a 2xx for is there.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .sink import SinkClient

# Worker-delivered sends not yet sent after the run: give up when none moved for this long.
SETTLE_STALL_SECONDS = 60
RECIPIENTS = 200
SAMPLE_EMAILS = 200


def setup(*, emails: int) -> dict[str, Any]:
    """The demo data, then ``emails`` sent emails of a bulk job (BENCH.md's template) from
    a queue alice is a member of, so her lists and the staff lists hold them; ANALYZE."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import F
    from rest_framework.authtoken.models import Token

    from activities.models import Email, EmailState, EmailStatus
    from crm.models import Contact, Queue, User

    from . import data
    from .workloads import _flush_broker

    _flush_broker()
    call_command("load_demo_data", force=True, stdout=io.StringIO())
    world = data.make_world(delivery="worker")
    alice = User.objects.get(username="alice")
    admin = User.objects.get(username="admin")
    bulk_queue = Queue.objects.get(pk=world["queue_id"])
    bulk_queue.members.add(alice)
    data.make_contacts(emails)
    job_id = data.start_job(world)
    data.run_job(job_id)
    # Sent already (as on a real day): nothing of these is delivered during the run.
    Email.objects.filter(bulk_send_id=job_id).update(
        status=EmailStatus.SENT, state=EmailState.COMPLETED, sent_at=F("created_at")
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    contacts = list(
        Contact.objects.exclude(email="")
        .order_by("?")
        .values("id", "email", "first_name")[:RECIPIENTS]
    )
    sample = list(
        Email.objects.filter(bulk_send_id=job_id)
        .order_by("-id")
        .values_list("id", flat=True)[:SAMPLE_EMAILS]
    )
    support = Queue.objects.get(email__startswith="support@")
    relay = Queue.objects.get(email__startswith="relay@")
    return {
        "password": os.environ.get("DEMO_PASSWORD", "demo"),
        "tokens": {
            "alice": Token.objects.get_or_create(user=alice)[0].key,
            "admin": Token.objects.get_or_create(user=admin)[0].key,
        },
        "queues": {"support": support.pk, "relay": relay.pk, "bulk": bulk_queue.pk},
        "sender_keys": {"admin": f"queue:{support.pk}", "alice": f"queue:{support.pk}"},
        "bulk_job": job_id,
        "contacts": contacts,
        "sample_email_ids": sample,
        "emails_in_table": Email.objects.count(),
    }


def _bare(message_id: str) -> str:
    return message_id.strip().strip("<>")


def verify(*, journal: str, control_port: int, settle_seconds: float) -> dict[str, Any]:
    """Every write answered with a 2xx, as answered: the created emails with their
    subjects, the sends sent and received by the sink exactly once, the uploads stored
    with their bytes, the reported claims sent. Returns the problems found, by kind."""
    from activities.models import ActivityMimeAttachment, Email, EmailStatus

    j = json.loads(Path(journal).read_text())
    problems: dict[str, list[str]] = {
        "missing": [],
        "wrong_subject": [],
        "not_sent": [],
        "sink_missing": [],
        "sink_duplicate": [],
        "external_lost": [],
        "upload": [],
        "double_claim": [],
        "replay": [],
    }
    subjects = {int(k): v for k, v in j["subjects"].items()}
    composed = {int(k): v for k, v in j["composed"].items()}
    found = {
        e["id"]: e
        for e in Email.objects.filter(pk__in=set(subjects) | set(composed)).values(
            "id", "subject", "status"
        )
    }
    for pk, subject in subjects.items():
        if pk not in found:
            problems["missing"].append(f"email {pk} (answered 2xx) is not in the database")
        elif found[pk]["subject"] != subject:
            problems["wrong_subject"].append(
                f"email {pk}: subject {found[pk]['subject']!r}, answered {subject!r}"
            )
    for pk, typed in composed.items():
        if pk not in found:
            problems["missing"].append(f"email {pk} (composed, 302) is not in the database")
        elif not (found[pk]["subject"] == typed or found[pk]["subject"].startswith(typed + " ")):
            problems["wrong_subject"].append(
                f"email {pk}: subject {found[pk]['subject']!r}, typed {typed!r}"
            )

    # The worker's sends: wait until they are all sent (or nothing moves any more).
    worker_ids = set(j["sent_worker"])
    started = moved_at = time.monotonic()
    left = -1
    while True:
        statuses = Counter(Email.objects.filter(pk__in=worker_ids).values_list("status", flat=True))
        now_left = len(worker_ids) - statuses.get(EmailStatus.SENT, 0)
        if now_left != left:
            left, moved_at = now_left, time.monotonic()
        if left == 0 or statuses.get(EmailStatus.FAILED):
            break
        if time.monotonic() - moved_at > SETTLE_STALL_SECONDS:
            break
        if time.monotonic() - started > settle_seconds:
            break
        time.sleep(1)
    settle = time.monotonic() - started
    sink_ids = {_bare(k): v for k, v in SinkClient(control_port).message_ids().items()}
    rows = Email.objects.filter(pk__in=worker_ids).values("id", "status", "message_id")
    by_status = Counter(r["status"] for r in rows)
    for row in rows:
        if row["status"] != EmailStatus.SENT:
            problems["not_sent"].append(f"email {row['id']} is {row['status']}")
        count = sink_ids.get(_bare(row["message_id"] or ""), 0)
        if count == 0:
            problems["sink_missing"].append(f"email {row['id']} {row['message_id']}: not received")
        elif count > 1:
            problems["sink_duplicate"].append(
                f"email {row['id']} {row['message_id']}: received {count} times"
            )
    missing_rows = worker_ids - {r["id"] for r in rows}
    problems["missing"] += [f"sent email {pk} is not in the database" for pk in missing_rows]

    # The Relay queue's sends wait for the external sender; the ones it reported are sent.
    external = dict(Email.objects.filter(pk__in=j["sent_external"]).values_list("id", "status"))
    waiting = {EmailStatus.PENDING_SEND, EmailStatus.SENDING, EmailStatus.SENT}
    for pk in j["sent_external"]:
        if external.get(pk) not in waiting:
            problems["external_lost"].append(
                f"email {pk} (sent to the relay) is {external.get(pk)}"
            )
    reported = dict(Email.objects.filter(pk__in=j["reported_sent"]).values_list("id", "status"))
    for pk in j["reported_sent"]:
        if reported.get(pk) != EmailStatus.SENT:
            problems["external_lost"].append(f"email {pk} reported sent is {reported.get(pk)}")
    problems["replay"] = [
        f"email {pk}: a repeated send with the same Idempotency-Key was not answered as the first"
        for pk in j.get("replay_mismatches", [])
    ]
    claims = Counter(j["claimed"])
    problems["double_claim"] = [
        f"email {pk} claimed {n} times" for pk, n in claims.items() if n > 1
    ]

    # Uploads: the link on its email, the blob with the bytes uploaded.
    uploads = {int(k): v for k, v in j["uploads"].items()}
    links = {
        a.pk: a
        for a in ActivityMimeAttachment.objects.filter(pk__in=uploads).select_related("blob")
    }
    for pk, up in uploads.items():
        link = links.get(pk)
        if link is None:
            problems["upload"].append(f"attachment {pk} (answered 201) is not in the database")
            continue
        with link.blob.file.open("rb") as stored:
            digest = hashlib.sha256(stored.read()).hexdigest()
        if (link.email_id, link.blob.size, link.blob.sha256, digest, up["answered_sha256"]) != (
            up["email"],
            up["size"],
            up["sha256"],
            up["sha256"],
            up["sha256"],
        ):
            problems["upload"].append(
                f"attachment {pk}: email {link.email_id}, {link.blob.size} bytes, stored "
                f"sha256 {digest[:12]}; uploaded to {up['email']}, {up['size']} bytes, "
                f"{up['sha256'][:12]}"
            )
    sink = SinkClient(control_port).stats()
    return {
        "problems": {k: v[:20] for k, v in problems.items()},
        "problem_counts": {k: len(v) for k, v in problems.items()},
        "lost_writes": sum(len(v) for v in problems.values()),
        "counts": {
            "emails_created": len(subjects) + len(composed),
            "created_over_api": len(subjects),
            "composed_and_sent_on_pages": len(composed),
            "sent_through_worker": len(worker_ids),
            "worker_sends_by_status": dict(by_status),
            "sent_to_relay": len(j["sent_external"]),
            "claimed": len(claims),
            "reported_sent": len(j["reported_sent"]),
            "uploads": len(uploads),
            "sink_received": sink["received"],
            "sink_duplicates": sink["duplicates"],
            "settle_seconds": round(settle, 1),
        },
    }
