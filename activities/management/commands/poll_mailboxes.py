"""``manage.py poll_mailboxes [--mailbox ID] [--once]``: poll the polled mailboxes (IMAP,
POP3) for received mail, as the beat task ``poll_mailboxes`` does, and say what each poll
did. Without ``--once`` it polls every ``CRM_MAILBOX_POLL_INTERVAL`` seconds until
SIGTERM or Ctrl-C. Exits with 1 when a poll of ``--once`` failed.
"""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from activities.models import PolledMailbox
from activities.services.mailboxes import PollResult, mailbox_poll, mailboxes_poll_all


class Command(BaseCommand):
    help = "Poll the IMAP and POP3 mailboxes of the queues and users for received mail."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--mailbox", type=int, help="poll only this mailbox (by id), even when disabled"
        )
        parser.add_argument("--once", action="store_true", help="poll once and exit")

    def _poll(self, mailbox_id: int | None) -> list[PollResult]:
        if mailbox_id is None:
            return mailboxes_poll_all()
        mailbox = PolledMailbox.objects.filter(pk=mailbox_id).first()
        if mailbox is None:
            raise CommandError(f"no polled mailbox has the id {mailbox_id}")
        return [mailbox_poll(mailbox=mailbox)]

    def _report(self, results: list[PollResult]) -> None:
        if not results:
            self.stdout.write("no enabled mailbox to poll")
        names = dict(
            (m.pk, str(m))
            for m in PolledMailbox.objects.filter(pk__in=[r.mailbox_id for r in results])
        )
        for result in results:
            line = f"mailbox {result.mailbox_id} {names.get(result.mailbox_id, '')}: "
            write = self.stderr.write if result.error else self.stdout.write
            write(line + result.summary())
        self.stdout.flush()

    def handle(self, *args, **options) -> None:
        if options["once"]:
            results = self._poll(options["mailbox"])
            self._report(results)
            if any(r.error for r in results):
                raise SystemExit(1)
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        interval = settings.CRM_MAILBOX_POLL_INTERVAL
        self.stdout.write(f"polling every {interval:g} s (CRM_MAILBOX_POLL_INTERVAL)")
        while not stop.is_set():
            self._report(self._poll(options["mailbox"]))
            stop.wait(interval)
        self.stdout.write("stopped")
