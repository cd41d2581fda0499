"""``bin/bench``: run the BENCH.md workloads on SQLite and PostgreSQL, print one table.

This process only orchestrates: it prepares each database, starts the SMTP sink, and
runs every setup and every measured workload in a fresh child process
(``bench.child``), so that a workload's peak RSS is that of the process doing it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import report
from .report import Row

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ["W1", "W2", "W3", "W4", "L1", "L2"]
DATABASES = ["sqlite", "postgresql"]
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/crm_bench"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/13"

# N per workload when --n is not given: what a full run can afford on a 2-core machine.
DEFAULT_N = {
    "W1": [1_000, 10_000, 100_000],
    "L2": [1_000, 10_000, 100_000],
    "W2": [1_000, 10_000],
    "L1": [1_000, 10_000],
    "W3": [10_000],
    "W4": [100_000],
}
QUICK_N = 50
W4_PAGE_SIZES = [50, 200]

# Variables of the caller's environment that would send a child elsewhere.
NOT_INHERITED = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "EMAIL_BACKEND",
    "EMAIL_URL",
    "OUTBOX_DIR",
    "MEDIA_ROOT",
    "CACHE_URL",
    "AWS_STORAGE_BUCKET_NAME",
    "DJANGO_SETTINGS_MODULE",
    "DEBUG",
    "LOG_LEVEL",
    "CONN_MAX_AGE",
}


@dataclass
class Target:
    """One database under test, with its own data folder and broker."""

    kind: str
    data_dir: Path
    database_url: str
    broker_url: str
    smtp_port: int = 0

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in NOT_INHERITED and not k.startswith(("CRM_", "ANYMAIL_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.broker_url,
            CRM_DATA_DIR=str(self.data_dir),
            EMAIL_URL=f"smtp://127.0.0.1:{self.smtp_port}" if self.smtp_port else "outbox",
            EMAIL_TIMEOUT="60",
            DEBUG="false",
            # Plain HTTP on loopback with no proxy in front: no HTTPS redirect; no
            # collectstatic for the bench's own data folder.
            CRM_HTTPS="false",
            CRM_STATIC_HASHED="false",
            SECRET_KEY="bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",  # noqa: S106
            LOG_LEVEL="WARNING",
            CRM_QUIET="1",
            CRM_API_THROTTLE_USER="",
            CRM_API_THROTTLE_ANON="",
            CRM_BULK_CHUNK_SIZE=os.environ.get("CRM_BULK_CHUNK_SIZE", "500"),
            PYTHONUNBUFFERED="1",
        )
        return env


class ChildFailed(RuntimeError):
    pass


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.work = Path(args.data_dir).resolve()
        self.versions: dict[str, str] = {}
        self.sink: subprocess.Popen | None = None
        self.sink_control = 0
        self.failed = False

    # --- children ---------------------------------------------------------------------

    def child(self, target: Target, action: str, **params: Any) -> dict[str, Any]:
        out = target.data_dir / f"result-{action}.json"
        out.unlink(missing_ok=True)
        command = [sys.executable, "-m", "bench.child", action, json.dumps(params), str(out)]
        proc = subprocess.run(
            command, cwd=ROOT, env=target.env(), capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise ChildFailed(
                f"{action} on {target.kind} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
            )
        return json.loads(out.read_text())

    def log(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    # --- databases --------------------------------------------------------------------

    def target(self, kind: str) -> Target:
        data_dir = self.work / kind
        if kind == "sqlite":
            url = f"sqlite:///{data_dir / 'bench.sqlite3'}"
            broker = "filesystem://"
        else:
            url = self.args.pg_url
            broker = self.args.broker_url
        return Target(kind, data_dir, url, broker)

    def prepare(self, target: Target) -> None:
        shutil.rmtree(target.data_dir, ignore_errors=True)
        target.data_dir.mkdir(parents=True)
        if target.kind == "postgresql":
            self._pg_admin(target, create=True)
        proc = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=target.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ChildFailed(f"migrate on {target.kind} failed:\n{proc.stderr[-4000:]}")
        self.versions[target.kind] = self.child(target, "info")["version"]

    def _pg_admin(self, target: Target, *, create: bool) -> None:
        import psycopg

        parts = urlsplit(target.database_url)
        name = parts.path.lstrip("/")
        admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            quoted = '"' + name.replace('"', '""') + '"'
            conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
            if create:
                conn.execute(f"CREATE DATABASE {quoted}")

    def finish(self, target: Target) -> None:
        if target.kind == "postgresql" and not self.args.keep_db:
            self._pg_admin(target, create=False)

    # --- the sink -----------------------------------------------------------------------

    def start_sink(self) -> int:
        self.sink = subprocess.Popen(
            [sys.executable, "-m", "bench.sink"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        line = self.sink.stdout.readline()
        if not line.startswith("READY "):
            raise ChildFailed(f"the SMTP sink did not start: {line!r}")
        _, port, control = line.split()
        self.sink_control = int(control)
        return int(port)

    def stop_sink(self) -> None:
        if self.sink is not None:
            self.sink.terminate()
            self.sink.wait(timeout=10)

    def sink_client(self):
        from .sink import SinkClient

        return SinkClient(self.sink_control)

    # --- workloads ----------------------------------------------------------------------

    def sizes(self, workload: str) -> list[int]:
        if self.args.quick:
            return [QUICK_N]
        if self.args.n:
            return self.args.n
        return DEFAULT_N[workload]

    def add(self, workload: str, target: Target, n: int, runs: list[dict], unit: str) -> Row:
        row = Row(workload, target.kind, n, runs, unit=unit)
        self.rows.append(row)
        b = row.best
        self.log(f"{workload} {target.kind} N={n:,}: {b.get('rate', 0):,.0f} {unit}")
        return row

    def run_w1(self, target: Target, n: int) -> None:
        runs = []
        for _ in range(self.args.runs):
            setup = self.child(target, "setup", n=n, delivery="external", run=False)
            runs.append(self.child(target, "w1", job_id=setup["job_id"], n=n))
        self.add("W1", target, n, runs, "emails/s")

    def run_l2(self, target: Target, n: int) -> None:
        runs = [self.child(target, "l2", n=n) for _ in range(self.args.runs)]
        self.add("L2", target, n, runs, "rows/s")

    def run_delivery(self, target: Target, n: int, *, l1: bool, w2: bool) -> None:
        """L1 and W2 on the same N queued emails (W2 x2 on a fresh copy)."""
        sink = self.sink_client()
        l1_runs, one_runs, two_runs = [], [], []
        chunk = int(target.env()["CRM_BULK_CHUNK_SIZE"])
        timeout = max(120.0, n / 10)
        for _ in range(self.args.runs):
            setup = self.child(target, "setup", n=n, delivery="worker", run=True)
            if l1:
                spool = str(target.data_dir / "l1-spool.bin")
                self.child(target, "l1_build", job_id=setup["job_id"], spool=spool)
                sink.reset()
                result = self.child(target, "l1", n=n, spool=spool, smtp_port=target.smtp_port)
                result["sink"] = sink.stats()
                l1_runs.append(result)
                Path(spool).unlink(missing_ok=True)
            if w2:
                for workers, runs in ((1, one_runs), (2, two_runs)):
                    if workers == 2:
                        setup = self.child(target, "setup", n=n, delivery="worker", run=True)
                    sink.reset()
                    result = self.child(
                        target,
                        "w2",
                        job_id=setup["job_id"],
                        n=n,
                        workers=workers,
                        chunk_size=chunk,
                        control_port=self.sink_control,
                        log_dir=str(target.data_dir),
                        timeout=timeout,
                    )
                    result["sink"] = sink.stats()
                    runs.append(result)
        if l1:
            self.add("L1", target, n, l1_runs, "emails/s")
        if w2:
            self.add("W2 x1", target, n, one_runs, "emails/s")
            self.add("W2 x2", target, n, two_runs, "emails/s")

    def run_w3(self, target: Target, n: int) -> None:
        runs = []
        for _ in range(self.args.runs):
            setup = self.child(target, "setup", n=n, delivery="external", run=True)
            runs.append(
                self.child(
                    target,
                    "w3",
                    n=n,
                    token=setup["token"],
                    clients=self.args.w3_clients,
                    batch=self.args.w3_batch,
                    stats_path=str(target.data_dir / "server-stats.json"),
                    timeout=max(120.0, n / 20),
                )
            )
        self.add("W3", target, n, runs, "emails/s")

    def run_w4(self, target: Target, n: int) -> None:
        small = max(10, n // 100)
        setup = self.child(target, "setup_w4", n=n, n_small=small, page_sizes=W4_PAGE_SIZES)
        runs = []
        for _ in range(self.args.runs):
            result = self.child(
                target,
                "w4",
                token=setup["token"],
                page_size=50,
                clients=self.args.w4_clients,
                seconds=self.args.w4_seconds,
                stats_path=str(target.data_dir / "server-stats.json"),
            )
            result["probes"] = setup["probes"]
            runs.append(result)
        self.add("W4", target, n, runs, "req/s")

    def run_target(self, kind: str) -> None:
        target = self.target(kind)
        self.log(f"{kind}: preparing {target.database_url}")
        self.prepare(target)
        target.smtp_port = self.smtp_port
        chosen = self.args.workloads
        steps = []
        steps += [(f"L2 N={n}", self.run_l2, n, {}) for n in self.sizes("L2") if "L2" in chosen]
        steps += [(f"W1 N={n}", self.run_w1, n, {}) for n in self.sizes("W1") if "W1" in chosen]
        delivery_sizes = sorted({n for w in ("L1", "W2") if w in chosen for n in self.sizes(w)})
        for n in delivery_sizes:
            kinds = {
                "l1": "L1" in chosen and n in self.sizes("L1"),
                "w2": "W2" in chosen and n in self.sizes("W2"),
            }
            steps.append((f"L1/W2 N={n}", self.run_delivery, n, kinds))
        steps += [(f"W3 N={n}", self.run_w3, n, {}) for n in self.sizes("W3") if "W3" in chosen]
        steps += [(f"W4 N={n}", self.run_w4, n, {}) for n in self.sizes("W4") if "W4" in chosen]
        try:
            for name, step, n, kwargs in steps:
                try:
                    step(target, n, **kwargs)
                except ChildFailed as exc:
                    # One failed workload is reported and the others still run.
                    self.failed = True
                    self.log(str(exc))
                    first = str(exc).splitlines()[0]
                    self.notes.append(f"{kind} {name}: failed: {first} (see the log above)")
        finally:
            self.finish(target)

    def profile(self, kind: str) -> None:
        """cProfile of W1 (bulk_send_run) and of W2's chunk task body, per N."""
        target = self.target(kind)
        out = Path(self.args.profile).resolve()
        out.mkdir(parents=True, exist_ok=True)
        self.prepare(target)
        target.smtp_port = self.smtp_port
        try:
            for n in self.sizes("W1") if "W1" in self.args.workloads else []:
                setup = self.child(target, "setup", n=n, delivery="external", run=False)
                path = str(out / f"w1-{kind}-{n}.prof")
                r = self.child(target, "w1", job_id=setup["job_id"], n=n, profile=path)
                self.log(f"profile W1 {kind} N={n}: {r['rate']:,.0f}/s under cProfile -> {path}")
            for n in self.sizes("W2") if "W2" in self.args.workloads else []:
                setup = self.child(target, "setup", n=n, delivery="worker", run=True)
                path = str(out / f"w2-{kind}-{n}.prof")
                chunk = int(target.env()["CRM_BULK_CHUNK_SIZE"])
                r = self.child(
                    target, "w2_profile", job_id=setup["job_id"], chunk_size=chunk, profile=path
                )
                self.log(f"profile W2 {kind} N={n}: {r['rate']:,.0f}/s under cProfile -> {path}")
        finally:
            self.finish(target)

    # --- the whole run --------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        load_before = _load()
        self.smtp_port = self.start_sink()
        try:
            for kind in self.args.db:
                try:
                    if self.args.profile:
                        self.profile(kind)
                    else:
                        self.run_target(kind)
                except ChildFailed as exc:
                    self.failed = True
                    self.log(str(exc))
                    self.notes.append(f"{kind}: stopped by an error: {str(exc).splitlines()[0]}")
        finally:
            self.stop_sink()
        if self.args.profile:
            return 1 if self.failed else 0
        self.rows.sort(
            key=lambda r: (
                self.args.db.index(r.db),
                report.ORDER.index(r.workload),
                r.n,
            )
        )
        report.link_baselines(self.rows)
        meta = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": _git_commit(),
            "machine": _machine(),
            "databases": ", ".join(f"{k} {v}" for k, v in self.versions.items()),
            "command": "bin/bench " + " ".join(shlex.quote(a) for a in self.args.argv),
            "runs": self.args.runs,
            "load_before": load_before,
            "load_after": _load(),
            "wall_seconds": time.monotonic() - started,
            "notes": self.notes,
        }
        print(report.text_table(self.rows))
        print()
        for line in report.check_lines(self.rows):
            print(line)
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.markdown(self.rows, meta))
        out.with_suffix(".json").write_text(
            json.dumps({"meta": meta, "rows": [r.as_dict() for r in self.rows]}, indent=1)
        )
        self.log(f"results in {out} and {out.with_suffix('.json')}")
        return 1 if self.failed else 0


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "?"


def _machine() -> str:
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {ram}, {platform.platform()}, Python {platform.python_version()}"
    )


def _list(kind: type, choices: list[str] | None = None):
    def parse(text: str) -> list:
        items = [kind(x.strip().replace("_", "")) for x in text.split(",") if x.strip()]
        if choices:
            items = [x.upper() if x.upper() in choices else x for x in items]
            bad = [x for x in items if x not in choices]
            if bad:
                raise argparse.ArgumentTypeError(f"unknown: {', '.join(map(str, bad))}")
        return items

    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bin/bench", description="Run the BENCH.md workloads and print one table."
    )
    parser.add_argument(
        "--db",
        type=_list(str, DATABASES),
        default=list(DATABASES),
        help="sqlite,postgresql (default both)",
    )
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="the PostgreSQL database the bench creates, migrates and drops",
    )
    parser.add_argument(
        "--broker-url",
        default=DEFAULT_BROKER_URL,
        help="the broker of the PostgreSQL run (flushed before W2); "
        "the SQLite run uses kombu's file-system broker",
    )
    parser.add_argument(
        "--n",
        type=_list(int),
        default=None,
        help="N for every chosen workload (default: per workload, see docs)",
    )
    parser.add_argument("--workloads", type=_list(str, WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--runs", type=int, default=1, help="runs per configuration (median)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.md"))
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_N}, short W4: a smoke run")
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "bench"))
    parser.add_argument("--keep-db", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument("--w3-clients", type=int, default=8)
    parser.add_argument("--w3-batch", type=int, default=50)
    parser.add_argument("--w4-clients", type=int, default=4)
    parser.add_argument("--w4-seconds", type=float, default=15.0)
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="instead of measuring: cProfile W1 and W2 (in process) into DIR",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.w4_seconds = min(args.w4_seconds, 2.0)
    args.argv = argv
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return Bench(args).run()
