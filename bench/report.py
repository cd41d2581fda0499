"""The results table, the BENCH.md references and targets, and the markdown file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# BENCH.md "Reference figures": django-post_office 3.12 on this machine class, N = 1,000
# unless marked (PostgreSQL, SQLite).
REFERENCE = {
    ("W1", "postgresql"): "post_office send ~170/s, send_many ~1,150/s",
    ("W1", "sqlite"): "post_office send ~400/s, send_many ~1,200/s",
    ("L2", "postgresql"): "~20,000 rows/s",
    ("L2", "sqlite"): "~49,000 rows/s",
    ("W2 x1", "postgresql"): "post_office ~92/s (10k: ~79/s)",
    ("W2 x1", "sqlite"): "post_office ~85/s",
    ("W2 x2", "postgresql"): "post_office ~150/s (10k: ~137/s)",
    ("W2 x2", "sqlite"): "post_office ~135/s",
    ("L1", "postgresql"): "~255/s (10k: ~262/s)",
    ("L1", "sqlite"): "~265/s",
}
TARGET = {
    "W1": ">= 2,500/s at 100k on PG; < 0.05 q/email; RSS < 250 MB; 1 blob",
    "L2": "baseline for W1",
    "W2 x1": ">= 80 % of L1; 0 lost, 0 duplicates",
    "W2 x2": "> W2 x1; 0 lost, 0 duplicates",
    "L1": "baseline for W2",
    "W3": ">= 1,000/s; 0 double claims",
    "W4": "p99 < 150 ms; queries constant",
}
BASELINE = {"W1": "L2", "W2 x1": "L1", "W2 x2": "L1"}
ORDER = ["W1", "L2", "W2 x1", "W2 x2", "L1", "W3", "W4"]

W1_TARGET_RATE = 2500
W1_MAX_QUERIES_PER_EMAIL = 0.05
W1_MAX_RSS_MB = 250
W1_MAX_RSS_GROWTH_MB = 30
W2_MIN_SHARE_OF_L1 = 0.8
W3_TARGET_RATE = 1000
W4_MAX_P99_MS = 150


@dataclass
class Row:
    """One measured configuration: the run with the median rate, and all the runs."""

    workload: str
    db: str
    n: int
    runs: list[dict[str, Any]]
    unit: str = "emails/s"
    ratio: float | None = None
    checks: list[str] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any]:
        ordered = sorted(self.runs, key=lambda r: r.get("rate") or 0)
        return ordered[(len(ordered) - 1) // 2]

    def get(self, key: str, default: Any = None) -> Any:
        return self.best.get(key, default)

    @property
    def rates(self) -> list[float]:
        return [r.get("rate") or 0 for r in self.runs]

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "db": self.db,
            "n": self.n,
            "unit": self.unit,
            "ratio": self.ratio,
            "median": self.best,
            "runs": self.runs,
        }


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def link_baselines(rows: list[Row]) -> None:
    by_key = {(r.workload, r.db, r.n): r for r in rows}
    for row in rows:
        base = BASELINE.get(row.workload)
        other = by_key.get((base, row.db, row.n)) if base else None
        if other and other.get("rate"):
            row.ratio = row.get("rate") / other.get("rate")


COLUMNS = [
    "workload",
    "db",
    "N",
    "s",
    "rate",
    "unit",
    "RSS MB",
    "q/email",
    "blobs (bytes)",
    "sink rcvd",
    "dup",
    "other",
    "baseline",
    "ratio",
    "BENCH.md reference",
    "target",
]


def cells(row: Row) -> list[str]:
    b = row.best
    other = ""
    if row.workload == "W1":
        other = f"emails {b.get('emails')}, links {b.get('attachment_links')}"
    elif row.workload.startswith("W2"):
        rss = ", ".join(_mb(x) for x in b.get("worker_rss_mb") or [])
        other = f"sent {b.get('sent')}, worker RSS {rss}"
        if b.get("stalled") or b.get("timed_out"):
            other += ", STALLED" if b.get("stalled") else ", TIMED OUT"
        if b.get("worker_errors"):
            other += f", task errors {len(b['worker_errors'])}+"
    elif row.workload == "W3":
        other = f"double claims {b.get('double_claims')}, sent {b.get('sent')}, errors {b.get('errors')}"
    elif row.workload == "W4":
        probes = "; ".join(
            f"{p['rows']:,} rows: " + ", ".join(f"ps{k} {v}q" for k, v in p["queries"].items())
            for p in b.get("probes", [])
        )
        other = (
            f"p50 {_num(b.get('p50_ms'), 1)} ms, p99 {_num(b.get('p99_ms'), 1)} ms; "
            f"queries/request {probes}"
        )
    elif row.workload == "L2":
        other = f"rows {b.get('rows')}"
    qpe = b.get("queries_per_email")
    if row.workload == "W4":
        qpe = b.get("server_queries_per_request")
    blobs = ""
    if "blobs" in b:
        blobs = f"{b['blobs']} ({b['blob_bytes']:,})"
    spread = ""
    if len(row.runs) > 1:
        spread = f" [{min(row.rates):,.0f}-{max(row.rates):,.0f}]"
    return [
        row.workload,
        row.db,
        f"{row.n:,}",
        _num(b.get("seconds"), 2),
        _num(b.get("rate")) + spread,
        row.unit,
        _mb(b.get("rss_mb")),
        "-" if qpe is None else f"{qpe:.3f}",
        blobs or "-",
        "-" if b.get("sink") is None else str(b["sink"]["received"]),
        "-" if b.get("sink") is None else str(b["sink"]["duplicates"]),
        other or "-",
        BASELINE.get(row.workload, "-"),
        "-" if row.ratio is None else f"{row.ratio:.2f}",
        REFERENCE.get((row.workload, row.db), "-"),
        TARGET.get(row.workload, "-"),
    ]


def text_table(rows: list[Row]) -> str:
    table = [COLUMNS] + [cells(r) for r in rows]
    # The wide descriptive columns go last and are not padded.
    narrow = len(COLUMNS) - 4
    widths = [max(len(line[i]) for line in table) for i in range(narrow)]
    out = []
    for line in table:
        head = "  ".join(
            cell.rjust(w) if i >= 2 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line[:narrow], widths, strict=True))
        )
        out.append(head + "  " + " | ".join(line[narrow:]))
    return "\n".join(out)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells(row)) + " |")
    return "\n".join(lines)


def checks(rows: list[Row]) -> list[tuple[bool | None, str]]:
    """One line per BENCH.md target that this run measured: (passed, text)."""
    out: list[tuple[bool | None, str]] = []

    def add(ok: bool | None, text: str) -> None:
        out.append((ok, text))

    by = {(r.workload, r.db, r.n): r for r in rows}
    for row in rows:
        b, where = row.best, f"{row.db}, N={row.n:,}"
        if row.workload == "W1":
            if row.db == "postgresql" and row.n == 100_000:
                add(
                    b["rate"] >= W1_TARGET_RATE,
                    f"W1 >= {W1_TARGET_RATE:,} emails/s ({where}): {b['rate']:,.0f}/s",
                )
            add(
                b["queries_per_email"] < W1_MAX_QUERIES_PER_EMAIL,
                f"W1 < {W1_MAX_QUERIES_PER_EMAIL} queries/email ({where}): "
                f"{b['queries_per_email']:.3f}",
            )
            add(
                b["rss_mb"] < W1_MAX_RSS_MB,
                f"W1 peak RSS < {W1_MAX_RSS_MB} MB ({where}): {b['rss_mb']:.0f} MB",
            )
            add(
                b["emails"] == row.n
                and b["attachment_links"] == row.n
                and b["blobs"] == 1
                and b["blobs_linked"] == 1,
                f"W1 stores N emails, N attachment links, 1 blob ({where}): {b['emails']} "
                f"emails, {b['attachment_links']} links, {b['blobs']} blob(s)",
            )
            small = by.get(("W1", row.db, 10_000))
            if row.n == 100_000 and small:
                growth = b["rss_mb"] - small.get("rss_mb")
                add(
                    growth < W1_MAX_RSS_GROWTH_MB,
                    f"W1 RSS(100k) - RSS(10k) < {W1_MAX_RSS_GROWTH_MB} MB ({row.db}): "
                    f"{growth:+.0f} MB",
                )
        elif row.workload.startswith("W2"):
            sink = b.get("sink") or {}
            add(
                b.get("sent") == row.n
                and sink.get("received") == row.n
                and sink.get("duplicates") == 0,
                f"{row.workload}: 0 lost, 0 duplicates ({where}): sent {b.get('sent')}, "
                f"sink received {sink.get('received')}, duplicates {sink.get('duplicates')}",
            )
            if row.workload == "W2 x1" and row.ratio is not None:
                add(
                    row.ratio >= W2_MIN_SHARE_OF_L1,
                    f"W2 x1 >= {W2_MIN_SHARE_OF_L1:.0%} of L1 ({where}): {row.ratio:.0%}",
                )
            one = by.get(("W2 x1", row.db, row.n))
            if row.workload == "W2 x2" and one:
                add(
                    b["rate"] > one.get("rate"),
                    f"W2 x2 faster than x1 ({where}): {b['rate']:,.0f} vs {one.get('rate'):,.0f}/s",
                )
        elif row.workload == "W3":
            add(
                b["double_claims"] == 0 and b["sent"] == row.n and b["errors"] == 0,
                f"W3 0 double claims, all N sent, no errors ({where}): "
                f"{b['double_claims']} double, {b['sent']} sent, {b['errors']} errors",
            )
            add(
                b["rate"] >= W3_TARGET_RATE,
                f"W3 >= {W3_TARGET_RATE:,} emails/s ({where}): {b['rate']:,.0f}/s",
            )
        elif row.workload == "W4":
            counts = {q for p in b.get("probes", []) for q in p["queries"].values()}
            add(
                len(counts) == 1,
                f"W4 queries per request constant in page size and table size ({where}): "
                f"{sorted(counts)}",
            )
            if b.get("p99_ms") is not None:
                add(
                    b["p99_ms"] < W4_MAX_P99_MS,
                    f"W4 p99 < {W4_MAX_P99_MS} ms ({where}): {b['p99_ms']:.1f} ms",
                )
            add(b.get("errors") == 0, f"W4 no failed requests ({where}): {b.get('errors')}")
    return out


def derived_notes(rows: list[Row]) -> list[str]:
    """What went wrong inside a workload whose counts still came out."""
    notes = []
    for row in rows:
        b, where = row.best, f"{row.workload} {row.db} N={row.n:,}"
        if row.workload.startswith("W2"):
            errors = b.get("worker_errors") or []
            if errors or b.get("stalled") or b.get("timed_out"):
                notes.append(
                    f"{where}: "
                    + (
                        "stopped: no message reached the sink for 30 s; "
                        if b.get("stalled")
                        else ""
                    )
                    + ("timed out; " if b.get("timed_out") and not b.get("stalled") else "")
                    + f"sent {b.get('sent')} of {row.n}; emails by status {b.get('by_status')}"
                    + (f"; a worker logged: {errors[0]!r}" if errors else "")
                )
        if row.workload == "W3" and b.get("errors"):
            first = (b.get("first_errors") or [""])[0]
            locked = "database is locked" in (b.get("server_log_tail") or "")
            notes.append(
                f"{where}: the server answered {b['errors']} requests with an error "
                f"(first: {first[:100]!r})"
                + ("; its log says `database is locked`" if locked else "")
                + (
                    "; the clients retried the failed claims and every email was sent."
                    if b.get("sent") == row.n
                    else f"; only {b.get('sent')} of {row.n} were sent before the clients "
                    "stopped (time limit or too many errors)."
                )
            )
    return notes


def check_lines(rows: list[Row]) -> list[str]:
    mark = {True: "PASS", False: "MISS", None: "n/a "}
    return [f"{mark[ok]}  {text}" for ok, text in checks(rows)]


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"- date: {meta['date']}",
        f"- git commit: {meta['commit']}",
        f"- machine: {meta['machine']}",
        f"- databases: {meta['databases']}",
        f"- command: `{meta['command']}`",
        f"- runs per configuration: {meta['runs']} (the row shows the run with the median "
        "rate; [min-max] when several)",
        f"- load average before / after: {meta['load_before']} / {meta['load_after']}",
        f"- wall time: {meta['wall_seconds']:.0f} s",
        "",
        "See docs/bench.md for what each column means. Figures on a shared machine drift by",
        "~13 % typically and up to ~50 %: compare ratios to the baselines of the same run.",
        "",
        markdown_table(rows),
        "",
        "## Targets (BENCH.md)",
        "",
    ]
    lines += [f"- {line}" for line in check_lines(rows)] or ["- nothing measured"]
    notes = list(meta.get("notes") or []) + derived_notes(rows)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def rerender(path: str) -> None:
    """Write the markdown again from a results JSON (after a change to this module)."""
    import json
    from pathlib import Path

    data = json.loads(Path(path).read_text())
    rows = []
    for r in data["rows"]:
        row = Row(r["workload"], r["db"], r["n"], r["runs"], unit=r["unit"])
        rows.append(row)
    link_baselines(rows)
    Path(path).with_suffix(".md").write_text(markdown(rows, data["meta"]))


if __name__ == "__main__":
    import sys

    rerender(sys.argv[1])
