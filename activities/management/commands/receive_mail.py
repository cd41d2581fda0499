"""``manage.py receive_mail [--host H] [--port P]``: the SMTP listener for sites that
point MX at the application (``activities.inbound_smtp``). Runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandParser

from activities import conf
from activities.inbound_smtp import inbound_controller


class Command(BaseCommand):
    help = "Receive mail over SMTP for the addresses of the queues and users."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=2525, help="port to listen on")

    def handle(self, *args, **options) -> None:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        controller = inbound_controller(hostname=options["host"], port=options["port"])
        controller.start()
        self.stdout.write(
            f"receiving mail on {options['host']}:{options['port']} "
            f"(messages up to {conf.inbound_max_bytes():,} bytes)",
        )
        self.stdout.flush()
        try:
            stop.wait()
        finally:
            controller.stop()
        self.stdout.write("stopped")
