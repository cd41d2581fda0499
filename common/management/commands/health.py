"""``manage.py health --kind web|worker|beat``: exit 0 when this kind of process can work
(the container health check of each process), 1 with the reasons otherwise."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from common.health import PROCESS_KINDS, readiness


class Command(BaseCommand):
    help = "Check that a process of the given kind can do its work (exit 1 if not)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--kind", choices=PROCESS_KINDS, default="web")

    def handle(self, *args, kind: str, **options) -> None:
        results = readiness(kind)
        for name, result in results.items():
            self.stdout.write(f"{name}: {result}")
        failed = [result for result in results.values() if result != "ok"]
        if failed:
            raise CommandError(f"{kind} is not ready: " + "; ".join(failed))
