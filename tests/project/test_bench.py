"""The benchmark's smoke run: every workload at N=50 on the suite's kind of database.

``bin/bench --quick`` against a database and data folder of its own, with real worker
processes, a real SMTP sink and a real web server; the counts must come out exact.
Timings are printed by the bench, never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.slow

N = 50


def bench_command(tmp_path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--out",
        str(tmp_path / "results.md"),
        "--data-dir",
        str(tmp_path / "data"),
    ]
    if connection.vendor == "postgresql":
        # A database of its own next to the suite's: the bench creates and drops it.
        parts = urlsplit(os.environ["DATABASE_URL"])
        name = parts.path.lstrip("/") + "_bench"
        pg_url = urlunsplit(parts._replace(path="/" + name))
        # The suite's broker (a Redis database of its own in CI); the bench flushes it.
        broker = settings.CELERY_BROKER_URL
        command += ["--db", "postgresql", "--pg-url", pg_url, "--broker-url", broker]
    else:
        command += ["--db", "sqlite"]
    return command


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    tmp_path = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        bench_command(tmp_path),
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(proc.stdout)
    print(proc.stderr[-5000:])
    assert proc.returncode == 0, proc.stderr[-5000:]
    data = json.loads((tmp_path / "results.json").read_text())
    data["markdown"] = (tmp_path / "results.md").read_text()
    data["by"] = {row["workload"]: row["median"] for row in data["rows"]}
    return data


def test_the_quick_run_measures_every_workload_once(results):
    kind = "postgresql" if connection.vendor == "postgresql" else "sqlite"
    assert sorted((r["workload"], r["db"], r["n"]) for r in results["rows"]) == sorted(
        (w, kind, N) for w in ("W1", "L2", "W2 x1", "W2 x2", "L1", "W3", "W4")
    )
    assert "| W1 | " in results["markdown"]
    assert "## Targets (BENCH.md)" in results["markdown"]


def test_w1_writes_one_email_and_one_attachment_link_per_contact_over_one_blob(results):
    w1 = results["by"]["W1"]
    assert w1["completed"]
    assert (w1["emails"], w1["pending"], w1["attachment_links"]) == (N, N, N)
    assert (w1["blobs"], w1["blobs_linked"], w1["blob_bytes"]) == (1, 1, 100 * 1024)
    assert w1["queries"] > 0


def test_w2_delivers_each_message_once_with_one_and_two_workers(results):
    for label, workers in (("W2 x1", 1), ("W2 x2", 2)):
        w2 = results["by"][label]
        assert w2["workers"] == workers and not w2["timed_out"]
        assert w2["sent"] == N and w2["by_status"] == {"sent": N}
        sink = w2["sink"]
        assert (sink["received"], sink["unique"], sink["duplicates"]) == (N, N, 0)
        assert sink["without_message_id"] == 0
        assert len(w2["worker_rss_mb"]) == workers


def test_the_baselines_send_and_insert_n(results):
    assert results["by"]["L1"]["sink"]["received"] == N
    assert results["by"]["L1"]["sink"]["duplicates"] == 0
    assert results["by"]["L2"]["rows"] == N
    by_workload = {r["workload"]: r for r in results["rows"]}
    assert by_workload["W2 x1"]["ratio"] is not None
    assert by_workload["W1"]["ratio"] is not None


def test_w3_claims_and_reports_every_email_once(results):
    w3 = results["by"]["W3"]
    assert (w3["claimed"], w3["sent"], w3["double_claims"]) == (N, N, 0)


def test_w4_lists_with_a_constant_number_of_queries(results):
    w4 = results["by"]["W4"]
    assert w4["requests"] > 0 and w4["errors"] == 0
    rows = [probe["rows"] for probe in w4["probes"]]
    assert rows == [10, N]
    counts = {count for probe in w4["probes"] for count in probe["queries"].values()}
    assert len(counts) == 1
