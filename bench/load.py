"""``bin/bench-load`` (``python -m bench.load``): the load run of docs/bench.md.

The API and the staff pages under simulated users (locust, ``bench/locustfile.py``),
served as in production: gunicorn with ``config/gunicorn.py`` on PostgreSQL, DEBUG off,
a real Celery worker (and beat) delivering to the bench's SMTP sink. Then every write
the users got a 2xx for is checked in the database and at the sink (``bench/load_db.py``).
Prints one table (requests, failures, 5xx, requests/s, latency percentiles per request
kind) and writes it, with the checks, to ``bench/results/load.md`` and ``.json``.

Exit status 0 only with zero 5xx, no unexpected answer and zero lost writes.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .cli import ROOT, Bench, ChildFailed, Target, _git_commit, _load, _machine

DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/crm_bench_load"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/12"
LOCUSTFILE = ROOT / "bench" / "locustfile.py"
PERCENTILES = (50, 90, 95, 99)
# The answers a request kind is expected to get; anything else is a failure.
EXPECTED = {
    "api create draft": {201},
    "api upload attachment": {201},
    "api send": {202},
    "api send again (same key)": {202},
    # A page past the end of a filtered list.
    "api list emails": {200, 404},
    "page sign-in": {302},
    # The integrators' mistakes (bench/locustfile.py, client_mistake).
    "api mistake: send a sent email": {409},
    "api mistake: unknown filter value": {400},
    "api mistake: no such email": {404},
    "api mistake: bad address": {400},
    "page compose send": {302},
}
START_TIMEOUT = 90
# gunicorn's access log line (config/gunicorn.py access_log_format): status and milliseconds.
ACCESS_LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) \S+ (?P<ms>\d+)ms'
)


class Process:
    """A server process of the run, in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.log_path = name, log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise ChildFailed(f"{self.name} exited ({self.proc.returncode}):\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM to the group (gunicorn's and Celery's warm shutdown), then SIGKILL."""
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port: int, path: str) -> int:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return 0


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def summarise(journal: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per request kind, then ``overall``."""
    seconds = max(journal["stopped"] - journal["started"], 1e-9)
    rows = []
    every: list[float] = []
    totals = {"requests": 0, "failures": 0, "5xx": 0}
    for name in sorted(journal["latencies"]):
        latencies = sorted(journal["latencies"][name])
        statuses = {int(k): v for k, v in journal["statuses"][name].items()}
        expected = EXPECTED.get(name, {200})
        failures = sum(n for code, n in statuses.items() if code not in expected)
        server_errors = sum(n for code, n in statuses.items() if code >= 500)
        rows.append(_row(name, latencies, seconds, failures, server_errors, statuses))
        every += latencies
        totals["requests"] += len(latencies)
        totals["failures"] += failures
        totals["5xx"] += server_errors
    rows.append(_row("overall", sorted(every), seconds, totals["failures"], totals["5xx"], {}))
    return rows


def _row(name, latencies, seconds, failures, server_errors, statuses) -> dict[str, Any]:
    return {
        "kind": name,
        "requests": len(latencies),
        "failures": failures,
        "5xx": server_errors,
        "rps": len(latencies) / seconds,
        **{f"p{p}_ms": percentile(latencies, p) for p in PERCENTILES},
        "max_ms": latencies[-1] if latencies else None,
        "statuses": statuses,
    }


COLUMNS = (
    ["request kind", "requests", "failures", "5xx", "req/s"]
    + [f"p{p} ms" for p in PERCENTILES]
    + ["max ms"]
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _cells(row: dict[str, Any]) -> list[str]:
    ms = _ms
    return [
        row["kind"],
        f"{row['requests']:,}",
        str(row["failures"]),
        str(row["5xx"]),
        f"{row['rps']:.1f}",
        *(ms(row[f"p{p}_ms"]) for p in PERCENTILES),
        ms(row["max_ms"]),
    ]


def text_table(rows: list[dict[str, Any]]) -> str:
    table = [COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in table
    )


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def unexpected(rows: list[dict[str, Any]]) -> list[str]:
    """The answers outside what each kind expects, e.g. ``api send: 409 x 2``."""
    out = []
    for row in rows:
        expected = EXPECTED.get(row["kind"], {200})
        out += [
            f"{row['kind']}: {code or 'no answer'} x {n}"
            for code, n in sorted(row["statuses"].items())
            if code not in expected
        ]
    return out


def server_side(log: str) -> dict[str, Any]:
    """The web server's own view, from its access log: requests, 5xx, latency percentiles
    (gunicorn's request time, without the client's and the accept queue's waiting)."""
    times, server_errors = [], 0
    for match in ACCESS_LINE.finditer(log):
        if match["path"].startswith("/health/"):
            continue
        times.append(float(match["ms"]))
        server_errors += match["status"].startswith("5")
    times.sort()
    return {
        "requests": len(times),
        "5xx": server_errors,
        **{f"p{p}_ms": percentile(times, p) for p in PERCENTILES},
        "max_ms": times[-1] if times else None,
    }


def expected_refusals(rows: list[dict[str, Any]]) -> list[str]:
    """The 4xx answers that were expected (the integrators' mistakes, a page past the end)."""
    out = []
    for row in rows:
        expected = EXPECTED.get(row["kind"], {200})
        out += [
            f"{row['kind']}: {code} x {n}"
            for code, n in sorted(row["statuses"].items())
            if code in expected and code >= 400
        ]
    return out


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process's children and their children (the sink, web, worker,
    beat, locust): alive ones from psutil, those that ended from our own rusage."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class LoadRun:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.data_dir).resolve()
        self.bench = Bench(argparse.Namespace(data_dir=str(self.work), keep_db=args.keep_db))
        self.processes: list[Process] = []

    def log(self, text: str) -> None:
        print(f"[load {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def start_servers(self, target: Target, port: int) -> dict[str, Any]:
        env = target.env()
        web_env = {
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": str(self.args.web_workers),
            "GUNICORN_THREADS": str(self.args.web_threads),
        }
        # INFO: the worker's "ready." line says it has started.
        worker_env = {**env, "LOG_LEVEL": "INFO"}
        data = target.data_dir
        self.processes = [
            Process(
                "web",
                [
                    str(Path(sys.executable).parent / "gunicorn"),
                    "-c",
                    "config/gunicorn.py",
                    "config.wsgi",
                ],
                web_env,
                data / "web.log",
            ),
            Process(
                "worker",
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "--loglevel=INFO",
                    f"--concurrency={self.args.worker_concurrency}",
                    "--hostname",
                    f"load-{os.getpid()}@%h",
                ],
                worker_env,
                data / "worker.log",
            ),
            Process(
                "beat",
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "beat",
                    "--loglevel=INFO",
                    f"--schedule={data / 'celerybeat-schedule'}",
                ],
                env,
                data / "beat.log",
            ),
        ]
        deadline = time.monotonic() + START_TIMEOUT
        worker = self.processes[1]
        while http_status(port, "/health/") != 200 or " ready." not in worker.log():
            for process in self.processes:
                process.check()
            if time.monotonic() > deadline:
                raise ChildFailed(f"web or worker not ready after {START_TIMEOUT} s")
            time.sleep(0.2)
        return {
            "web": f"gunicorn {importlib.metadata.version('gunicorn')} (config/gunicorn.py): "
            f"gthread, {self.args.web_workers} workers x {self.args.web_threads} threads",
            "worker": f"celery {importlib.metadata.version('celery')} worker, prefork x "
            f"{self.args.worker_concurrency}, and beat",
        }

    def run_locust(self, port: int, params_path: Path, journal_path: Path) -> int:
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--host",
            f"http://127.0.0.1:{port}",
            "--users",
            str(self.args.users),
            "--spawn-rate",
            str(self.args.spawn_rate),
            "--run-time",
            f"{self.args.duration}s",
            "--stop-timeout",
            "10",
            "--only-summary",
            "--loglevel",
            "WARNING",
        ]
        env = {**os.environ, "LOAD_PARAMS": str(params_path), "LOAD_JOURNAL": str(journal_path)}
        log = self.work / "postgresql" / "locust.log"
        with open(log, "wb") as out:
            proc = subprocess.run(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=self.args.duration + 180,
                check=False,
            )
        for process in self.processes:
            process.check()
        if not journal_path.exists():
            tail = log.read_text(errors="replace")[-3000:]
            raise ChildFailed(f"locust wrote no journal (exit {proc.returncode}):\n{tail}")
        return proc.returncode

    def run(self) -> int:
        started = time.monotonic()
        load_before = _load()
        target = Target(
            "postgresql", self.work / "postgresql", self.args.pg_url, self.args.broker_url
        )
        smtp_port = self.bench.start_sink()
        target.smtp_port = smtp_port
        try:
            self.log(f"preparing {target.database_url}")
            self.bench.prepare(target)
            self.log(f"building the data: demo data and {self.args.emails:,} emails")
            params = self.bench.child(target, "load_setup", emails=self.args.emails)
            params_path = target.data_dir / "load-params.json"
            params_path.write_text(json.dumps(params))
            port = free_port()
            servers = self.start_servers(target, port)
            self.log(f"web on 127.0.0.1:{port}; {self.args.users} users for {self.args.duration} s")
            journal_path = target.data_dir / "load-journal.json"
            load_during = _load()
            cpu_before = (machine_busy_seconds(), own_cpu_seconds(), time.monotonic())
            locust_exit = self.run_locust(port, params_path, journal_path)
            load_after_run = _load()
            busy, own, at = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
            cores = os.cpu_count() or 1
            wall = at - cpu_before[2]
            cpu = {
                "machine_busy_pct": 100 * (busy - cpu_before[0]) / (wall * cores),
                "run_processes_pct": 100 * (own - cpu_before[1]) / (wall * cores),
            }
            self.log("checking the writes")
            checked = self.bench.child(
                target,
                "load_verify",
                journal=str(journal_path),
                control_port=self.bench.sink_control,
                settle_seconds=self.args.settle,
            )
            served = server_side(self.processes[0].log())
            server_errors = [
                line
                for p in self.processes
                for line in p.log().splitlines()
                if "Traceback" in line or " ERROR" in line or "[CRITICAL]" in line
            ]
        finally:
            for process in reversed(self.processes):
                process.stop()
            self.bench.stop_sink()
            self.bench.finish(target)
        journal = json.loads(journal_path.read_text())
        rows = summarise(journal)
        overall = rows[-1]
        meta = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": _git_commit(),
            "machine": _machine(),
            "database": f"PostgreSQL {self.bench.versions.get('postgresql', '?')}",
            "server": servers,
            "users": self.args.users,
            "spawn_rate": self.args.spawn_rate,
            "duration_s": round(journal["stopped"] - journal["started"], 1),
            "emails_in_table": params["emails_in_table"],
            "command": "bin/bench-load " + " ".join(shlex.quote(a) for a in self.args.argv),
            "load_before": load_before,
            "load_at_start": load_during,
            "load_at_end": load_after_run,
            "cpu": cpu,
            "wall_seconds": round(time.monotonic() - started),
            "locust_exit": locust_exit,
        }
        result = {
            "meta": meta,
            "rows": rows,
            "unexpected": unexpected(rows),
            "expected_refusals": expected_refusals(rows),
            "client_errors": journal["errors"],
            "server_error_lines": server_errors[:20],
            "server_side": served,
            "writes": checked,
        }
        ok = (
            overall["5xx"] == 0
            and served["5xx"] == 0
            and not result["unexpected"]
            and checked["lost_writes"] == 0
        )
        result["ok"] = ok
        print(text_table(rows))
        print()
        for line in summary_lines(result):
            print(line)
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown(result))
        out.with_suffix(".json").write_text(json.dumps(result, indent=1))
        self.log(f"results in {out} and {out.with_suffix('.json')}")
        return 0 if ok else 1


def summary_lines(result: dict[str, Any]) -> list[str]:
    meta, writes, overall = result["meta"], result["writes"], result["rows"][-1]
    served = result["server_side"]
    c = writes["counts"]
    lines = [
        f"server: {meta['server']['web']}; {meta['server']['worker']}; {meta['database']}",
        f"users: {meta['users']} (spawn {meta['spawn_rate']}/s), duration {meta['duration_s']} s, "
        f"{meta['emails_in_table']:,} emails in the table",
        f"machine: {meta['machine']}; load average before {meta['load_before']}, "
        f"at the start {meta['load_at_start']}, at the end {meta['load_at_end']}",
        f"CPU during the run: the machine {meta['cpu']['machine_busy_pct']:.0f} % busy (all "
        f"cores), the run's own processes (web, worker, beat, locust, sink) "
        f"{meta['cpu']['run_processes_pct']:.0f} %; the rest is PostgreSQL (for this run and "
        "any other) and other programs",
        f"5xx: {overall['5xx']}; unexpected answers: "
        + (", ".join(result["unexpected"]) or "none"),
        "expected 4xx: " + (", ".join(result["expected_refusals"]) or "none"),
        f"server side (gunicorn's access log): {served['requests']:,} requests, "
        f"{served['5xx']} 5xx, "
        + ", ".join(f"p{p} {_ms(served[f'p{p}_ms'])}" for p in PERCENTILES)
        + f", max {_ms(served['max_ms'])} ms",
        f"writes: {c['emails_created']} emails created ({c['created_over_api']} over the API, "
        f"{c['composed_and_sent_on_pages']} composed and sent on the pages), "
        f"{c['sent_through_worker']} sent through the worker (sink received "
        f"{c['sink_received']}, duplicates {c['sink_duplicates']}, all sent "
        f"{c['settle_seconds']} s after the run), {c['sent_to_relay']} sent to the relay, "
        f"{c['claimed']} claimed, {c['reported_sent']} reported sent, {c['uploads']} uploads",
        f"lost writes: {writes['lost_writes']}"
        + "".join(f"; {k} {v}" for k, v in writes["problem_counts"].items() if v),
    ]
    for kind, problems in writes["problems"].items():
        lines += [f"  {kind}: {p}" for p in problems[:5]]
    lines += [f"  client error: {e}" for e in result["client_errors"][:5]]
    lines += [f"  server log: {e}" for e in result["server_error_lines"][:5]]
    lines.append("PASS" if result["ok"] else "FAIL")
    return lines


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        "# Load run",
        "",
        f"- date: {meta['date']}, commit {meta['commit']}",
        f"- command: `{meta['command']}`",
        f"- wall time: {meta['wall_seconds']} s (data, servers, run, checks)",
        "",
        markdown_table(result["rows"]),
        "",
    ]
    lines += [f"- {line}" for line in summary_lines(result)]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bin/bench-load",
        description="Load the API and the staff pages under gunicorn; check every write.",
    )
    parser.add_argument("--users", type=int, default=50, help="simulated users (default 50)")
    parser.add_argument("--duration", type=int, default=180, help="seconds of load (default 180)")
    parser.add_argument("--spawn-rate", type=float, default=5, help="users started per second")
    parser.add_argument(
        "--emails", type=int, default=20_000, help="sent emails in the table before the run"
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="created, migrated, dropped")
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL, help="flushed at the start")
    parser.add_argument("--web-workers", type=int, default=2, help="GUNICORN_WORKERS")
    parser.add_argument("--web-threads", type=int, default=4, help="GUNICORN_THREADS")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument(
        "--settle", type=float, default=300, help="seconds to wait for the sends to be sent"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.md"))
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "bench-load"))
    parser.add_argument("--keep-db", action="store_true", help="keep the PostgreSQL database")
    args = parser.parse_args(argv)
    args.argv = argv
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return LoadRun(args).run()
    except ChildFailed as exc:
        print(f"[load] {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
