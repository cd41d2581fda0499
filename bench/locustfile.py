"""The load run's simulated users, for locust (``bench/load.py`` starts it headless).

Three kinds of user, weighted like a working day on the demo data:

- ``ApiIntegrator`` (token auth, as alice): lists emails with filters and pages, reads
  single emails and bulk-send jobs, and writes: creates drafts, edits some, uploads an
  attachment to some, and sends most of them (mostly through the Support queue, whose
  mail the Celery worker delivers; some through the Relay queue, which waits for an
  external sender).
- ``RelaySender`` (token auth, as alice, a fixed few): the external send component of
  the Relay queue: claims batches and reports them sent.
- ``StaffMember`` (the browser, as admin or alice): signs in with the CSRF token, reads
  the mail list's tabs and pages and email pages, composes and sends through the form.

Every request is tallied (kind, status, latency) by an event listener, and every write
that got a 2xx is journaled with what the server answered; at the end both go to the
JSON file named by ``LOAD_JOURNAL``, which ``bench/load.py`` checks against the
database and the SMTP sink. Setup figures (tokens, ids) come from ``LOAD_PARAMS``.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import os
import random
import re
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

API = "/api/v1"
PARAMS: dict[str, Any] = json.loads(Path(os.environ["LOAD_PARAMS"]).read_text())
JOURNAL = Path(os.environ["LOAD_JOURNAL"])
EMAIL_LINK = re.compile(r'href="/mail/(\d+)/"')
BODY_FRAME = re.compile(r'<iframe class="body-frame email-frame"[^>]*\ssrc="([^"]+)"')
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
TABS = ["outbox", "sent", "drafts", "received"]
SEARCH_WORDS = ["First1", "Last2", "Hello", "customers", "Renewal", "Nordlys"]
_counter = itertools.count(1)
_lock = threading.Lock()


class Journal:
    """What the users did: every request's outcome, and every write the server accepted."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.errors: list[str] = []
        # email id -> the subject the last 2xx answer about it showed
        self.subjects: dict[str, str] = {}
        # email id -> the subject typed in the compose form (the server adds a token)
        self.composed: dict[str, str] = {}
        self.sent_worker: list[int] = []  # sends accepted for the worker's queue
        self.sent_external: list[int] = []  # sends accepted for the Relay queue
        self.reported_sent: list[int] = []  # claimed and reported sent, recorded
        self.claimed: list[int] = []
        self.replay_mismatches: list[int] = []  # a repeated send not answered as the first
        # attachment id -> {"email", "size", "sha256"}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.started = time.time()
        self.stopped: float | None = None

    def write(self) -> None:
        data = {
            "latencies": self.latencies,
            "statuses": self.statuses,
            "errors": self.errors[:50],
            "subjects": self.subjects,
            "composed": self.composed,
            "sent_worker": self.sent_worker,
            "sent_external": self.sent_external,
            "reported_sent": self.reported_sent,
            "claimed": self.claimed,
            "replay_mismatches": self.replay_mismatches,
            "uploads": self.uploads,
            "started": self.started,
            "stopped": self.stopped or time.time(),
        }
        JOURNAL.write_text(json.dumps(data))


journal = Journal()


@events.request.add_listener
def _tally(name: str, response_time: float, response=None, exception=None, **kwargs) -> None:
    status = getattr(response, "status_code", 0) or 0
    journal.latencies[name].append(response_time)
    journal.statuses[name][str(status)] += 1
    if (exception is not None or status >= 500 or status == 0) and len(journal.errors) < 50:
        body = getattr(response, "text", "") or ""
        journal.errors.append(f"{name}: {status} {exception!r} {body[:300]}")


@events.test_start.add_listener
def _started(**kwargs) -> None:
    journal.started = time.time()


@events.test_stop.add_listener
def _stopped(**kwargs) -> None:
    journal.stopped = time.time()


@events.quitting.add_listener
def _quitting(**kwargs) -> None:
    journal.write()


def unique(prefix: str) -> str:
    with _lock:
        n = next(_counter)
    return f"{prefix} {n} {uuid.uuid4().hex[:8]}"


def ok(response, *codes: int) -> bool:
    """Mark the request failed (for locust's own summary) unless its status is expected."""
    if response.status_code in codes:
        response.success()
        return True
    response.failure(f"{response.status_code}: {response.text[:200]}")
    return False


class ApiIntegrator(HttpUser):
    weight = 3
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Token {PARAMS['tokens']['alice']}"
        self.seen: list[int] = list(PARAMS["sample_email_ids"])
        self.sent: list[int] = []

    def _json(self, method: str, path: str, name: str, body: Any, *codes: int, **kw):
        with self.client.request(
            method, API + path, name=name, json=body, catch_response=True, **kw
        ) as response:
            if ok(response, *codes):
                return response.json()
        return None

    @task(10)
    def list_emails(self) -> None:
        # Pages 1 to 20 of 50, within the table (a small one in the smoke test).
        last = max(1, min(20, PARAMS["emails_in_table"] // 50))
        params: dict[str, Any] = {"page": random.randint(1, last), "page_size": 50}
        choice = random.randrange(5)
        if choice == 0:
            params["status"] = "sent"
        elif choice == 1:
            params["sender_queue"] = PARAMS["queues"]["bulk"]
        elif choice == 2:
            params["search"] = random.choice(SEARCH_WORDS)
            params["page"] = 1
        elif choice == 3:
            params["status"] = ["pending_send", "sending"]
            params["page"] = 1
        with self.client.get(
            API + "/emails/", params=params, name="api list emails", catch_response=True
        ) as response:
            # A page past the end of a filtered list is the one expected 404.
            if response.status_code == 404 and params["page"] > 1:
                response.success()
                return
            if ok(response, 200):
                ids = [e["id"] for e in response.json()["results"]]
                self.seen = (ids + self.seen)[:200]

    @task(6)
    def retrieve_email(self) -> None:
        email_id = random.choice(self.seen)
        with self.client.get(
            f"{API}/emails/{email_id}/", name="api retrieve email", catch_response=True
        ) as response:
            ok(response, 200)

    @task(2)
    def bulk_send_status(self) -> None:
        if random.random() < 0.5:
            path, name = f"/bulk-sends/{PARAMS['bulk_job']}/", "api bulk-send status"
        else:
            path, name = "/bulk-sends/", "api bulk-send list"
        with self.client.get(API + path, name=name, catch_response=True) as response:
            ok(response, 200)

    @task(1)
    def client_mistake(self) -> None:
        """What integrators get wrong now and then; each has its expected 4xx."""
        choice = random.randrange(4)
        if choice == 0 and self.sent:
            self._json(
                "POST",
                f"/emails/{random.choice(self.sent)}/send/",
                "api mistake: send a sent email",
                {"issue_send": True},
                409,
            )
        elif choice == 1:
            with self.client.get(
                API + "/emails/",
                params={"status": "shipped"},
                name="api mistake: unknown filter value",
                catch_response=True,
            ) as response:
                ok(response, 400)
        elif choice == 2:
            with self.client.get(
                f"{API}/emails/{10**12 + random.randrange(1000)}/",
                name="api mistake: no such email",
                catch_response=True,
            ) as response:
                ok(response, 404)
        else:
            self._json(
                "POST",
                "/emails/",
                "api mistake: bad address",
                {
                    "subject": unique("Bad"),
                    "body_text": "x",
                    "sender": {"type": "queue", "id": PARAMS["queues"]["support"]},
                    "to": ["not an address"],
                },
                400,
            )

    @task(4)
    def write_and_send(self) -> None:
        external = random.random() < 0.25
        queue = PARAMS["queues"]["relay" if external else "support"]
        contact = random.choice(PARAMS["contacts"])
        subject = unique("Load")
        draft = self._json(
            "POST",
            "/emails/",
            "api create draft",
            {
                "subject": subject,
                "body_text": f"Hello {contact['first_name']}, about your account.",
                "body_html": f"<p>Hello {contact['first_name']}, about your account.</p>",
                "sender": {"type": "queue", "id": queue},
                "to": [{"contact": contact["id"]}],
            },
            201,
        )
        if draft is None:
            return
        email_id = draft["id"]
        journal.subjects[str(email_id)] = draft["subject"]
        if random.random() < 0.4:
            answer = self._json(
                "PATCH",
                f"/emails/{email_id}/",
                "api update draft",
                {"subject": subject + " (edited)", "priority": "high"},
                200,
            )
            if answer is not None:
                journal.subjects[str(email_id)] = answer["subject"]
        if random.random() < 0.3:
            content = os.urandom(random.randint(2_000, 60_000))
            with self.client.post(
                API + "/attachments/",
                name="api upload attachment",
                data={"object_type": "email", "object_id": str(email_id)},
                files={"file": (f"notes-{email_id}.bin", content, "application/octet-stream")},
                catch_response=True,
            ) as response:
                if ok(response, 201):
                    body = response.json()
                    journal.uploads[str(body["id"])] = {
                        "email": email_id,
                        "size": len(content),
                        "sha256": hashlib.sha256(content).hexdigest(),
                        "answered_sha256": body["attachment_id"],
                    }
        if random.random() < 0.85:
            answer = self._json(
                "POST",
                f"/emails/{email_id}/send/",
                "api send",
                {"issue_send": True},
                202,
                headers={"Idempotency-Key": f"load-send-{email_id}"},
            )
            if answer is None:
                return
            journal.subjects[str(email_id)] = answer["subject"]
            (journal.sent_external if external else journal.sent_worker).append(email_id)
            self.seen.insert(0, email_id)
            self.sent = [email_id, *self.sent[:49]]
            if random.random() < 0.1:
                # A client that lost the answer sends again with the same key: the first
                # answer again, and the mail still goes once (the sink's count says so).
                with self.client.post(
                    f"{API}/emails/{email_id}/send/",
                    name="api send again (same key)",
                    json={"issue_send": True},
                    headers={"Idempotency-Key": f"load-send-{email_id}"},
                    catch_response=True,
                ) as response:
                    if ok(response, 202):
                        replayed = response.headers.get("Idempotent-Replayed") == "true"
                        if not replayed or response.json()["id"] != email_id:
                            response.failure("not the first answer replayed")
                            journal.replay_mismatches.append(email_id)


class RelaySender(HttpUser):
    """The external send component of the Relay queue: a fixed few, not weighted."""

    fixed_count = 2
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Token {PARAMS['tokens']['alice']}"

    @task
    def claim_and_report(self) -> None:
        with self.client.post(
            API + "/emails/claim/",
            name="api claim",
            json={"max": 10, "lease_seconds": 120},
            catch_response=True,
        ) as response:
            if not ok(response, 200):
                return
            claimed = response.json()["results"]
        if not claimed:
            return
        journal.claimed.extend(e["id"] for e in claimed)
        if len(claimed) == 1:
            e = claimed[0]
            with self.client.post(
                f"{API}/emails/{e['id']}/delivery-result/",
                name="api delivery-result",
                json={"lease_token": e["lease_token"], "outcome": "sent"},
                catch_response=True,
            ) as response:
                if ok(response, 200):
                    journal.reported_sent.append(e["id"])
            return
        with self.client.post(
            API + "/emails/delivery-results/",
            name="api delivery-results",
            json={
                "results": [
                    {"id": e["id"], "lease_token": e["lease_token"], "outcome": "sent"}
                    for e in claimed
                ]
            },
            catch_response=True,
        ) as response:
            if ok(response, 200):
                for result in response.json()["results"]:
                    if result["recorded"]:
                        journal.reported_sent.append(result["id"])


class StaffMember(HttpUser):
    weight = 2
    wait_time = between(1.0, 4.0)

    def on_start(self) -> None:
        self.username = random.choice(["admin", "alice"])
        self.sender = PARAMS["sender_keys"][self.username]
        self.seen: list[int] = []
        with self.client.get("/sign-in/", name="page sign-in form", catch_response=True) as r:
            ok(r, 200)
        token = self.client.cookies.get("csrftoken", "")
        with self.client.post(
            "/sign-in/",
            name="page sign-in",
            data={
                "username": self.username,
                "password": PARAMS["password"],
                "csrfmiddlewaretoken": token,
            },
            headers={"Referer": self.host + "/sign-in/"},
            allow_redirects=False,
            catch_response=True,
        ) as response:
            ok(response, 302)

    def _page(self, path: str, name: str, **params: Any) -> str | None:
        with self.client.get(path, name=name, params=params, catch_response=True) as response:
            if ok(response, 200):
                return response.text
        return None

    @task(8)
    def mail_list(self) -> None:
        tab = random.choice(TABS)
        page = 1 if random.random() < 0.7 else random.randint(2, 30)
        html = self._page(f"/mail/{tab}/", "page mail list", page=page)
        if html:
            self.seen = [int(x) for x in EMAIL_LINK.findall(html)][:50] or self.seen

    @task(5)
    def email_page(self) -> None:
        if not self.seen:
            return self.mail_list()
        page = self._page(f"/mail/{random.choice(self.seen)}/", "page email")
        frame = BODY_FRAME.search(page or "")
        if frame:
            # The browser then loads the sanitised body into the page's frame.
            self._page(html.unescape(frame.group(1)), "page email body frame")

    @task(2)
    def compose_and_send(self) -> None:
        html = self._page("/mail/new/", "page compose form")
        if html is None:
            return
        found = CSRF_FIELD.search(html)
        token = found.group(1) if found else self.client.cookies.get("csrftoken", "")
        contact = random.choice(PARAMS["contacts"])
        subject = unique("Staff")
        with self.client.post(
            "/mail/new/",
            name="page compose send",
            data={
                "csrfmiddlewaretoken": token,
                "action": "send",
                "sender": self.sender,
                "to": contact["email"],
                "subject": subject,
                "body_text": f"Dear {contact['first_name']},\n\nthank you for your call.\n",
                "priority": "normal",
            },
            headers={"Referer": self.host + "/mail/new/"},
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if not ok(response, 302):
                return
            found = re.search(r"/mail/(\d+)/$", response.headers.get("Location", ""))
            if found is None:
                response.failure(f"send redirected to {response.headers.get('Location')!r}")
                return
            journal.composed[found.group(1)] = subject
            journal.sent_worker.append(int(found.group(1)))
