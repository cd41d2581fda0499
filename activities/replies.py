"""What a reply, a forward or a reopened draft starts with: the compose form's values.

Domain rules, not page logic: who a reply goes to (never the replier's own addresses),
which queue it comes from, how the original is quoted, ``Re:``/``Fwd:`` once. Values
are in the compose form's shape: addresses as ``"Name <address>"`` text and the sender
as its key (``"user:3"``, ``"queue:1"``).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from crm.models import User

from .addresses import custom_header_lines, party_text
from .html import text_of_html
from .models import Email, PartyRole, Priority
from .records import record_type_of
from .selectors import sender_key

RECIPIENT_ROLES = (PartyRole.TO, PartyRole.CC, PartyRole.BCC)


def _plain_text(email: Email) -> str:
    return email.body_text if email.body_text.strip() else text_of_html(email.body_html)


def _when(email: Email) -> str:
    moment = email.received_at or email.sent_at or email.created_at
    return timezone.localtime(moment).strftime("%-d %b %Y %H:%M") if moment else ""


def _parties(email: Email, role: str) -> list:
    return [p for p in email.parties.all() if p.role == role]


def _from_text(email: Email) -> str:
    senders = _parties(email, PartyRole.FROM)
    if senders:
        return party_text(senders[0])
    return email.from_address or (email.sender.email if email.sender else "")


def _prefixed(prefix: str, subject: str, known: tuple[str, ...]) -> str:
    subject = subject.strip()
    if subject.lower().startswith(known):
        return subject
    return f"{prefix} {subject}".strip()


def _regarding_initial(email: Email) -> dict[str, Any]:
    record = email.regarding if email.regarding_type_id else None
    if record is None:
        return {"regarding_type": "", "regarding_id": ""}
    return {"regarding_type": record_type_of(record), "regarding_id": record.pk}


def reply_fields(original: Email, user: User, *, reply_all: bool) -> dict[str, Any]:
    """A reply to ``original`` by ``user``: to its sender or its Reply-To (its recipients too with
    ``reply_all``, never the user's own addresses), from the queue it was addressed to
    if the user is a member, ``Re:`` once, the original quoted."""
    own_queues = list(user.queues.all())
    own = {a.lower() for a in [user.email, *(q.email for q in own_queues)] if a}
    seen: set[str] = set()
    to: list[str] = []
    cc: list[str] = []

    def add(target: list[str], party) -> None:
        address = party.address.lower()
        if address in own or address in seen:
            return
        seen.add(address)
        target.append(party_text(party))

    # RFC 5322 3.6.2: a reply goes to the Reply-To addresses when the original has them.
    for party in _parties(original, PartyRole.REPLY_TO) or _parties(original, PartyRole.FROM):
        add(to, party)
    if reply_all or not to:  # a reply to one's own sent mail goes to its recipients
        for party in _parties(original, PartyRole.TO):
            add(to, party)
    if reply_all:
        for party in _parties(original, PartyRole.CC):
            add(cc, party)
    addressed = {p.address.lower() for p in original.parties.all() if p.role != PartyRole.FROM}
    queue = next((q for q in own_queues if q.email.lower() in addressed), None)
    quoted = "\n".join(f"> {line}" if line else ">" for line in _plain_text(original).splitlines())
    return {
        "sender": sender_key(queue or user),
        "to": ", ".join(to),
        "cc": ", ".join(cc),
        "subject": _prefixed("Re:", original.subject, ("re:",)),
        "body_text": f"\n\nOn {_when(original)}, {_from_text(original)} wrote:\n{quoted}\n",
        "priority": Priority.NORMAL,
        **_regarding_initial(original),
    }


def forward_fields(original: Email, user: User) -> dict[str, Any]:
    """A forward of ``original`` by ``user``: ``Fwd:`` once, the original's headers and
    text below; no recipients."""
    lines = [
        "",
        "",
        "---------- Forwarded message ----------",
        f"From: {_from_text(original)}",
        f"Date: {_when(original)}",
        f"Subject: {original.subject}",
    ]
    for role, label in ((PartyRole.TO, "To"), (PartyRole.CC, "Cc")):
        parties = _parties(original, role)
        if parties:
            lines.append(f"{label}: {', '.join(party_text(p) for p in parties)}")
    return {
        "sender": sender_key(user),
        "subject": _prefixed("Fwd:", original.subject, ("fwd:", "fw:")),
        "body_text": "\n".join([*lines, "", _plain_text(original), ""]),
        "priority": Priority.NORMAL,
        **_regarding_initial(original),
    }


def draft_fields(email: Email) -> dict[str, Any]:
    """A saved draft (or failed email) as the compose form shows it again."""
    return {
        "sender": sender_key(email.sender),
        **{
            role: ", ".join(party_text(p) for p in _parties(email, role))
            for role in RECIPIENT_ROLES
        },
        "subject": email.subject,
        "body_text": email.body_text,
        "body_html": email.body_html,
        "priority": email.priority,
        "template": email.template_id or "",
        "reply_to": ", ".join(party_text(p) for p in _parties(email, PartyRole.REPLY_TO)),
        "headers": custom_header_lines(email.headers),
        "request_delivery_receipt": email.request_delivery_receipt,
        "request_read_receipt": email.request_read_receipt,
        **_regarding_initial(email),
    }
