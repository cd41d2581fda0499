"""``manage.py collect_blobs [--dry-run] [--grace-seconds N] [--limit N]``: the blob
garbage collection of the hourly beat task (``collect_orphan_blobs``), run by hand.

Removes blobs that no attachment references and nobody touched within the grace
period (``CRM_BLOB_GC_GRACE_SECONDS`` unless given), and files under ``blobs/sha256/``
that no blob row names and that are older than it. ``--dry-run`` removes nothing and
prints what would go; ``-v 2`` lists the storage names.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from activities.services.blobs import blob_collect_garbage


def _not_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Remove unreferenced blobs and orphan blob files older than the grace period."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="remove nothing; report what would go"
        )
        parser.add_argument(
            "--grace-seconds",
            type=_not_negative,
            default=None,
            help="keep what was touched or written within this many seconds "
            "(default: CRM_BLOB_GC_GRACE_SECONDS)",
        )
        parser.add_argument(
            "--limit",
            type=_not_negative,
            default=1000,
            help="at most this many blobs and this many orphan files (default 1000)",
        )

    def handle(self, *args, dry_run: bool, grace_seconds: int | None, limit: int, **options):
        if limit == 0:
            raise CommandError("--limit must be at least 1")
        report = blob_collect_garbage(grace_seconds=grace_seconds, limit=limit, dry_run=dry_run)
        if options["verbosity"] >= 2:
            for name in report.names:
                self.stdout.write(name)
        self.stdout.write(report.summary())
