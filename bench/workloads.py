"""The measured workloads. Each function runs in a fresh child process (``bench.child``)
with Django set up on the bench database, and returns a dict of figures.

Setup (contacts, the template, queued emails) is done by an earlier child, so the peak
RSS that a function reports is that of the process doing the measured work only.
"""

from __future__ import annotations

import cProfile
import http.client
import json
import os
import pstats
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .measure import counting_queries, peak_rss_mb, vm_hwm_mb
from .sink import SinkClient

API = "/api/v1"
MAX_ERRORS = 1000
# W2 gives up when the sink has received nothing new for this long.
STALL_SECONDS = 30


# --- W1 queue ----------------------------------------------------------------------------


def w1(*, job_id: int, n: int, profile: str | None = None) -> dict[str, Any]:
    """Time ``bulk_send_run`` in process; then check what it stored."""
    from django.db.models import Sum

    from activities.models import ActivityMimeAttachment, AttachmentBlob, BulkSendStatus, Email
    from activities.services.bulk import bulk_send_run

    profiler = cProfile.Profile() if profile else None
    with counting_queries() as queries:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        job = bulk_send_run(job_id=job_id)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
    rss = peak_rss_mb()
    if profiler:
        _write_profile(profiler, profile)
    emails = Email.objects.filter(bulk_send_id=job_id)
    links = ActivityMimeAttachment.objects.filter(email__bulk_send_id=job_id)
    blobs = AttachmentBlob.objects.aggregate(count=models_count(), bytes=Sum("size"))
    return {
        "seconds": seconds,
        "rate": n / seconds,
        "rss_mb": rss,
        "queries": queries.count,
        "queries_per_email": queries.count / n,
        "job_status": job.status,
        "completed": job.status == BulkSendStatus.COMPLETED,
        "emails": emails.count(),
        "pending": emails.filter(status="pending_send").count(),
        "attachment_links": links.count(),
        "blobs_linked": links.values("blob_id").distinct().count(),
        "blobs": blobs["count"],
        "blob_bytes": blobs["bytes"] or 0,
    }


def models_count():
    from django.db.models import Count

    return Count("pk")


def _write_profile(profiler: cProfile.Profile, path: str) -> None:
    profiler.dump_stats(path)
    with open(path + ".txt", "w") as out:
        stats = pstats.Stats(path, stream=out).strip_dirs()
        out.write("=== by cumulative time ===\n")
        stats.sort_stats("cumulative").print_stats(40)
        out.write("\n=== by own time ===\n")
        stats.sort_stats("tottime").print_stats(40)


# --- L2 insert baseline --------------------------------------------------------------------


def l2(*, n: int) -> dict[str, Any]:
    """Raw ``executemany`` of N email-wide rows into a scratch table, one transaction."""
    from django.db import connection, transaction
    from django.utils import timezone

    from .data import BODY_HTML, BODY_TEXT

    html = BODY_HTML.replace("{{ contact.email|urlencode }}", "contact1%40customers.example.org")
    text = BODY_TEXT.replace("{{ contact.email|urlencode }}", "contact1%40customers.example.org")
    now = timezone.now()
    rows = []
    for i in range(n):
        fields = {
            "{{ contact.first_name }}": f"First{i}",
            "{{ contact.last_name }}": f"Last{i}",
            "{{ account.name }}": f"Customer {i // 50} AS",
            "{{ sender.name }}": "Customer care",
        }
        h, t = html, text
        for key, value in fields.items():
            h, t = h.replace(key, value), t.replace(key, value)
        rows.append(
            (
                f"Hello First{i}",
                h,
                t,
                "outgoing",
                "pending_send",
                "completed",
                "care@example.com",
                "Customer care",
                f"<{uuid.uuid4().hex}@crm.localhost>",
                now,
                now,
                now,
            )
        )
    id_type = "BIGSERIAL" if connection.vendor == "postgresql" else "INTEGER"
    stamp = "TIMESTAMP WITH TIME ZONE" if connection.vendor == "postgresql" else "DATETIME"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_l2")
        cursor.execute(
            f"CREATE TABLE bench_l2 (id {id_type} PRIMARY KEY, subject VARCHAR(400), "
            "body_html TEXT, body_text TEXT, direction VARCHAR(10), status VARCHAR(20), "
            "state VARCHAR(20), from_address VARCHAR(254), from_name VARCHAR(200), "
            f"message_id VARCHAR(255), created_at {stamp}, modified_at {stamp}, "
            f"queued_at {stamp})"
        )
    sql = (
        "INSERT INTO bench_l2 (subject, body_html, body_text, direction, status, state, "
        "from_address, from_name, message_id, created_at, modified_at, queued_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM bench_l2")
        stored = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_l2")
    return {"seconds": seconds, "rate": n / seconds, "rss_mb": peak_rss_mb(), "rows": stored}


# --- L1 smtplib baseline ---------------------------------------------------------------------


def l1_build(*, job_id: int, spool: str) -> dict[str, Any]:
    """Build the job's messages as they would go out, into a spool file (untimed)."""
    from django.conf import settings
    from django.core.mail.message import sanitize_address

    from activities.mail import build_message
    from activities.models import Email

    index = []
    emails = (
        Email.objects.filter(bulk_send_id=job_id)
        .order_by("pk")
        .prefetch_related("parties", "attachments__blob")
    )
    with open(spool, "wb") as out:
        for email in emails.iterator(chunk_size=500):
            message = build_message(email)
            data = message.message().as_bytes(linesep="\r\n")
            encoding = message.encoding or settings.DEFAULT_CHARSET
            index.append(
                (
                    out.tell(),
                    len(data),
                    sanitize_address(message.from_email, encoding),
                    [sanitize_address(a, encoding) for a in message.recipients()],
                )
            )
            out.write(data)
    Path(spool + ".json").write_text(json.dumps(index))
    sizes = [entry[1] for entry in index]
    return {"messages": len(index), "mean_bytes": statistics.mean(sizes) if sizes else 0}


def l1(*, n: int, spool: str, smtp_port: int) -> dict[str, Any]:
    """Send the spooled messages with smtplib over one connection."""
    index = json.loads(Path(spool + ".json").read_text())
    assert len(index) == n, f"spool holds {len(index)} messages, expected {n}"
    with open(spool, "rb") as source:
        connection = smtplib.SMTP("127.0.0.1", smtp_port, timeout=60)
        connection.ehlo()
        started = time.perf_counter()
        for offset, length, sender, recipients in index:
            source.seek(offset)
            connection.sendmail(sender, recipients, source.read(length))
        seconds = time.perf_counter() - started
        connection.quit()
    return {"seconds": seconds, "rate": n / seconds, "rss_mb": peak_rss_mb()}


# --- W2 deliver --------------------------------------------------------------------------


def _flush_broker() -> None:
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        for folder in ("queue", "processed"):
            path = Path(settings.BROKER_DIR) / folder
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True, exist_ok=True)
    else:
        from config.celery import purge_network_broker

        purge_network_broker(url)


class _Worker:
    def __init__(self, name: str, log_path: Path):
        self.name = name
        self.log_path = log_path
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--hostname",
            f"bench-{name}-{uuid.uuid4().hex[:6]}@%h",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command,
                # INFO: the worker's "ready." line is how the bench knows it has started
                # (processes log at LOG_LEVEL; celery's --loglevel does not change it).
                env={**os.environ, "LOG_LEVEL": "INFO"},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker {self.name} exited at start:\n{self.log()[-3000:]}")
        return " ready." in self.log()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)


def w2(
    *,
    job_id: int,
    n: int,
    workers: int,
    chunk_size: int,
    control_port: int,
    log_dir: str,
    timeout: float,
) -> dict[str, Any]:
    """Start the workers, enqueue the emails in chunks, time until all N are sent."""
    from activities.dispatch import deliver_chunk_now
    from activities.models import Email, EmailStatus

    emails = Email.objects.filter(bulk_send_id=job_id)
    ids = list(
        emails.filter(status=EmailStatus.PENDING_SEND).order_by("pk").values_list("pk", flat=True)
    )
    assert len(ids) == n, f"{len(ids)} pending emails, expected {n}"
    sink = SinkClient(control_port)
    _flush_broker()
    running = [
        _Worker(f"w{i + 1}", Path(log_dir) / f"worker-job{job_id}-w{i + 1}.log")
        for i in range(workers)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(w.ready() for w in running):
            if time.monotonic() > deadline:
                raise RuntimeError("workers not ready after 60 s")
            time.sleep(0.05)
        started = time.perf_counter()
        for first in range(0, len(ids), chunk_size):
            deliver_chunk_now(ids[first : first + chunk_size])
        deadline = time.monotonic() + timeout
        polls = 0
        done = stalled = False
        seen, moved_at = -1, time.monotonic()
        while not done:
            time.sleep(0.05)
            polls += 1
            received = sink.stats()["received"]
            if received != seen:
                seen, moved_at = received, time.monotonic()
            elif time.monotonic() - moved_at > STALL_SECONDS:
                stalled = True  # e.g. a chunk task died: its emails wait for the sweep
                break
            if received >= n:
                done = emails.filter(status=EmailStatus.SENT).count() >= n
            if polls % 40 == 0:
                for worker in running:
                    if worker.proc.poll() is not None:
                        raise RuntimeError(f"worker {worker.name} died:\n{worker.log()[-3000:]}")
                if emails.filter(status=EmailStatus.FAILED).exists():
                    break
            if time.monotonic() > deadline:
                break
        seconds = time.perf_counter() - started
        rss = [vm_hwm_mb(w.proc.pid) for w in running]
    finally:
        for worker in running:
            worker.stop()
    by_status = Counter(emails.values_list("status", flat=True))
    sent = by_status.get(EmailStatus.SENT, 0)
    return {
        "seconds": seconds,
        "rate": sent / seconds,
        "rss_mb": max((r for r in rss if r is not None), default=None),
        "worker_rss_mb": rss,
        "workers": workers,
        "sent": sent,
        "by_status": dict(by_status),
        "timed_out": not done,
        "stalled": stalled,
        "worker_errors": [e for w in running for e in _task_errors(w.log())][:5],
    }


def _task_errors(log: str) -> list[str]:
    """The first lines of the task failures a worker logged."""
    return [line.strip()[:300] for line in log.splitlines() if "raised unexpected" in line]


def w2_profile(*, job_id: int, chunk_size: int, profile: str) -> dict[str, Any]:
    """What a worker does for W2, in this process under cProfile: each chunk task's body
    called directly, over real SMTP to the sink (EMAIL_URL)."""
    from activities.models import Email, EmailStatus
    from activities.tasks import deliver_email_chunk

    ids = list(
        Email.objects.filter(bulk_send_id=job_id, status=EmailStatus.PENDING_SEND)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for first in range(0, len(ids), chunk_size):
        deliver_email_chunk(ids[first : first + chunk_size])
    profiler.disable()
    seconds = time.perf_counter() - started
    _write_profile(profiler, profile)
    sent = Email.objects.filter(bulk_send_id=job_id, status=EmailStatus.SENT).count()
    return {"seconds": seconds, "rate": sent / seconds, "sent": sent}


# --- W3 claim and W4 list: the web server and its clients ----------------------------------


class _Server:
    def __init__(self, stats_path: Path):
        self.stats_path = stats_path
        self.log_path = stats_path.with_suffix(".log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.server", "--stats", str(stats_path)],
                env=os.environ.copy(),
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"the bench server did not start: {self.log()[-3000:]}")
        self.port = int(line.split()[1])

    def warm_up(self, token: str) -> None:
        """A few requests first: the first ones import and connect (not measured)."""
        api = _Api(self.port, token)
        for _ in range(3):
            status, body = api.call("GET", "/emails/?page_size=1")
            if status != 200:
                raise RuntimeError(f"the bench server answered {status}: {body!s:.500}")
        api.connection.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            return json.loads(self.stats_path.read_text())
        except FileNotFoundError:
            return {}


class _Api:
    """One keep-alive HTTP/1.1 connection with the bench user's token."""

    def __init__(self, port: int, token: str):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        payload = json.dumps(body).encode() if body is not None else None
        self.connection.request(method, API + path, body=payload, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data[:500]


def _run_clients(client: Callable[[int], None], count: int) -> float:
    """Run ``client(0)`` ... ``client(count - 1)`` in threads; the seconds they took."""
    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def w3(
    *, n: int, token: str, clients: int, batch: int, stats_path: str, timeout: float
) -> dict[str, Any]:
    """8 clients claim batches over HTTP and report each batch's emails as sent, in one
    call per batch (``emails/delivery-results/``)."""
    from activities.models import Email, EmailStatus

    server = _Server(Path(stats_path))
    claimed: list[list[int]] = [[] for _ in range(clients)]
    errors: list[str] = []
    deadline = time.monotonic() + timeout

    def client(slot: int) -> None:
        api = _Api(server.port, token)
        try:
            while time.monotonic() < deadline:
                status, body = api.call("POST", "/emails/claim/", {"max": batch})
                if status >= 500 and len(errors) < MAX_ERRORS:
                    # Nothing was claimed (the transaction rolled back): a real sender
                    # tries again, and so does this one; the error is counted.
                    errors.append(f"claim {status}: {body!s:.300}")
                    continue
                if status != 200:
                    errors.append(f"claim {status}: {body!s:.300}")
                    return
                results = body["results"]
                if not results:
                    return
                claimed[slot].extend(email["id"] for email in results)
                # One call reports the whole batch (emails/delivery-results/).
                status, answer = api.call(
                    "POST",
                    "/emails/delivery-results/",
                    {
                        "results": [
                            {"id": e["id"], "lease_token": e["lease_token"], "outcome": "sent"}
                            for e in results
                        ]
                    },
                )
                if status != 200:
                    errors.append(f"report {status}: {answer!s:.300}")
                    continue
                refused = [r for r in answer["results"] if not r["recorded"]]
                if refused and len(errors) < MAX_ERRORS:
                    errors.append(f"{len(refused)} reports refused, e.g. {refused[0]}")
        except Exception as exc:  # a broken connection ends this client, and is reported
            errors.append(f"client {slot}: {exc!r}")

    try:
        server.warm_up(token)
        seconds = _run_clients(client, clients)
    finally:
        stats = server.stop()
    every = Counter(i for ids in claimed for i in ids)
    sent = Email.objects.filter(status=EmailStatus.SENT).count()
    return {
        "seconds": seconds,
        "rate": sent / seconds,
        "rss_mb": stats.get("rss_mb"),
        "claimed": len(every),
        "double_claims": sum(1 for count in every.values() if count > 1),
        "sent": sent,
        "errors": len(errors),
        "first_errors": errors[:5],
        "server_log_tail": server.log()[-2000:] if errors else "",
        "queries_per_email": stats["queries"] / n if stats.get("queries") else None,
        "requests": stats.get("requests"),
        "clients": clients,
        "batch": batch,
    }


def w4_probe(*, token: str, page_sizes: list[int]) -> dict[str, Any]:
    """SQL statements per list request, in process (test client), per page size."""
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from activities.models import Email

    client = Client()
    queries = {}
    for size in page_sizes:
        client.get(f"{API}/emails/", {"page_size": size}, HTTP_AUTHORIZATION=f"Token {token}")
        from django.db import connection

        with CaptureQueriesContext(connection) as context:
            response = client.get(
                f"{API}/emails/", {"page_size": size}, HTTP_AUTHORIZATION=f"Token {token}"
            )
        assert response.status_code == 200, response.content[:500]
        assert len(response.json()["results"]) == min(size, Email.objects.count())
        queries[str(size)] = len(context.captured_queries)
    return {"rows": Email.objects.count(), "queries": queries}


def w4(
    *, token: str, page_size: int, clients: int, seconds: float, stats_path: str
) -> dict[str, Any]:
    """A load generator: ``clients`` threads list emails over keep-alive connections."""
    server = _Server(Path(stats_path))
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    path = f"/emails/?page_size={page_size}"
    try:
        server.warm_up(token)
        stop_at = time.perf_counter() + seconds

        def client(slot: int) -> None:
            api = _Api(server.port, token)
            try:
                while time.perf_counter() < stop_at:
                    began = time.perf_counter()
                    status, body = api.call("GET", path)
                    latencies[slot].append(time.perf_counter() - began)
                    if status != 200 or len(body["results"]) != page_size:
                        errors.append(f"{status}: {str(body)[:200]}")
            except Exception as exc:  # a broken connection ends this client, and is reported
                errors.append(f"client {slot}: {exc!r}")

        elapsed = _run_clients(client, clients)
    finally:
        stats = server.stop()
    every = sorted(x for slot in latencies for x in slot)
    count = len(every)

    def percentile(p: float) -> float | None:
        return every[min(count - 1, int(p * count))] * 1000 if count else None

    return {
        "seconds": elapsed,
        "rate": count / elapsed,
        "requests": count,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "rss_mb": stats.get("rss_mb"),
        "server_queries_per_request": (
            stats["queries"] / stats["requests"] if stats.get("requests") else None
        ),
        "errors": len(errors),
        "first_errors": errors[:5],
        "clients": clients,
        "page_size": page_size,
    }
