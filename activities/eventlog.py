"""One log line per email event (status change, delivery attempt, refusal), written where
the event row is written. Each line carries the email id (and, through common.logging,
the request id and the task id), so a collector can follow an email across processes.
The line is written when the row is, inside its transaction."""

from __future__ import annotations

import logging
from collections.abc import Iterable

logger = logging.getLogger("activities.events")


def _line(
    email_id: int, kind: str, from_status: str, to_status: str, reason: str, actor_label: str
) -> None:
    change = f" {from_status or '-'} -> {to_status}" if to_status else ""
    logger.info(
        "email %s %s%s%s%s",
        email_id,
        kind,
        change,
        f" by {actor_label}" if actor_label else "",
        f": {reason}" if reason else "",
        extra={
            "email_id": email_id,
            "event": kind,
            "from_status": from_status,
            "to_status": to_status,
        },
    )


def email_events_logged(
    email_ids: Iterable[int],
    *,
    kind: str,
    from_status: str = "",
    to_status: str = "",
    reason: str = "",
    actor_label: str = "",
) -> None:
    """Log one line per email."""
    if not logger.isEnabledFor(logging.INFO):
        return
    for email_id in email_ids:
        _line(email_id, str(kind), str(from_status), str(to_status), reason, actor_label)
