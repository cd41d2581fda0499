"""Polling a queue's or a user's mailbox over IMAP or POP3 into received emails.

Each message goes: fetch -> ``inbound_message_receive`` (the raw kept, then read) and
the record of its UID (or UIDL) in one transaction -> then the after-store step on the server (mark ``\\Seen``,
move, delete). So a crash before the store loses nothing (the message is still on the
server and not recorded: the next poll takes it), and a crash after it stores nothing
twice (the UID is recorded with the email, whether or not the message has a
Message-ID; the next poll only finishes the server step). No network call is made
inside a transaction.

A poll has a budget (``CRM_MAILBOX_MAX_MESSAGES``, ``CRM_MAILBOX_MAX_POLL_BYTES``);
a message the server reports bigger than ``CRM_MAILBOX_MAX_MESSAGE_BYTES`` is refused
without being downloaded. A message refused with a reason (no sender; over the size limit) is recorded
(``last_refusal``, ``refused_count``, logged) and never taken again; it stays on the
server untouched, and its raw, when it was kept, is listed for staff. Mail kept but
not made an email (blocked for an unapproved address, unreadable) counts as stored:
staff see it among the kept messages. A connection, TLS or login failure is kept in ``last_error`` and the
next poll tries again. One poll of a mailbox at a time: a poll holds a lease on it.
"""

from __future__ import annotations

import imaplib
import ipaddress
import logging
import poplib
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from .. import conf
from ..errors import (
    ApplicationError,
    MailboxInvalid,
    MailboxLoginFailed,
    MailboxRefused,
    MailboxUnreachable,
    ValidationFailed,
)
from ..models import (
    AFTER_STORE_OF_PROTOCOL,
    InboundStatus,
    MailboxAfterStore,
    MailboxProtocol,
    MailboxSecurity,
    PolledMailbox,
    PolledMessage,
    PolledMessageOutcome,
)
from ..secrets import SecretUnreadable, seal, unseal
from .inbound import inbound_message_receive

logger = logging.getLogger(__name__)

# What a broken or timed-out connection raises, mid-poll (ssl.SSLError is an OSError).
_CONNECTION_ERRORS = (OSError, EOFError, imaplib.IMAP4.error, poplib.error_proto)
_TRACKED_FIELDS = ("protocol", "host", "port", "username", "folder")
_DELETE_CHUNK = 500


@dataclass
class PollResult:
    """What one poll of one mailbox did."""

    mailbox_id: int
    stored: int = 0
    duplicates: int = 0  # fetched, and stored before (the same Message-ID)
    refused: int = 0
    errors: int = 0  # messages that could not be stored now (taken again next poll)
    finished: int = 0  # after-store steps of an earlier poll done now
    more: bool = False  # the budget ran out with messages left for the next poll
    busy: bool = False  # another poll held the mailbox: nothing done
    error: str = ""  # the connection, login or storage failure that ended the poll

    def summary(self) -> str:
        if self.busy:
            return "skipped: another poll of this mailbox is running"
        text = (
            f"{self.stored} stored, {self.duplicates} stored before, {self.refused} refused"
            + (f", {self.errors} not stored" if self.errors else "")
            + (f", {self.finished} finished from an earlier poll" if self.finished else "")
            + ("; more waiting for the next poll" if self.more else "")
        )
        return text + (f"; failed: {self.error}" if self.error else "")


class _StoreFailed(Exception):
    """Storing a fetched message failed for a reason that may pass (the database, the
    blob storage): the poll stops, nothing of the message is recorded, the next poll
    fetches it again."""


# --- settings -------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mailbox_validate(*, mailbox: PolledMailbox) -> None:
    """Refuse settings that cannot work or would leak the password (``MailboxInvalid``
    naming the field): plain text beyond loopback unless ``CRM_MAILBOX_ALLOW_PLAIN``, an
    after-store step of the other protocol, a folder name that is not ASCII."""
    if (
        mailbox.security == MailboxSecurity.NONE
        and not conf.mailbox_allow_plain()
        and not _is_loopback(mailbox.host)
    ):
        raise MailboxInvalid(
            f"a connection without TLS to {mailbox.host} would send the password in clear "
            "text: choose TLS or STARTTLS (plain is allowed only to a loopback host, or "
            "with CRM_MAILBOX_ALLOW_PLAIN)",
            field="security",
        )
    allowed = AFTER_STORE_OF_PROTOCOL[MailboxProtocol(mailbox.protocol)]
    if mailbox.after_store not in allowed:
        raise MailboxInvalid(
            f"{mailbox.get_protocol_display()} can only "
            + " or ".join(a.replace("_", " ") for a in allowed)
            + f" a message after it is stored, not {mailbox.after_store.replace('_', ' ')}",
            field="after_store",
        )
    for field in ("folder", "move_to"):
        value: str = getattr(mailbox, field)
        if not value.isascii() or any(c in value for c in "\r\n\x00"):
            raise MailboxInvalid(f"the {field} name must be ASCII on one line", field=field)


def mailbox_save(*, mailbox: PolledMailbox, secret: str | None = None) -> PolledMailbox:
    """Validate and save a mailbox's settings; ``secret`` (the password), when given,
    is stored encrypted (``activities.secrets``). Changing the server, the account or
    the folder starts the tracking over (the Message-ID keeps what was stored from
    being stored twice)."""
    mailbox_validate(mailbox=mailbox)
    try:
        mailbox.full_clean()
    except ValidationError as exc:
        raise ValidationFailed("; ".join(exc.messages)) from exc
    if secret is not None:
        mailbox.secret_sealed = seal(secret)
    with transaction.atomic():
        if mailbox.pk is not None:
            before = PolledMailbox.objects.filter(pk=mailbox.pk).values(*_TRACKED_FIELDS).first()
            if before and any(before[f] != getattr(mailbox, f) for f in _TRACKED_FIELDS):
                mailbox.uidvalidity, mailbox.last_uid = None, 0
                PolledMessage.objects.filter(mailbox=mailbox).delete()
        mailbox.save()
    return mailbox


# --- connections ----------------------------------------------------------------------


def _ssl_context() -> ssl.SSLContext:
    """Verification on, always: the system's CAs, or ``CRM_MAILBOX_CA_FILE``."""
    return ssl.create_default_context(cafile=conf.mailbox_ca_file() or None)


def _where(mailbox: PolledMailbox) -> str:
    return f"{mailbox.host}:{mailbox.port}"


def _text(exc: BaseException) -> str:
    args: tuple[object, ...] = exc.args
    value = args[0] if len(args) == 1 else exc
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _password(mailbox: PolledMailbox) -> str:
    try:
        return unseal(mailbox.secret_sealed)
    except SecretUnreadable as exc:
        raise MailboxLoginFailed(str(exc)) from exc


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextmanager
def _unreachable(mailbox: PolledMailbox) -> Iterator[None]:
    try:
        yield
    except ssl.SSLError as exc:  # before OSError: it is one
        raise MailboxUnreachable(
            f"TLS with {_where(mailbox)} failed: {exc.reason or exc} (is the certificate "
            "valid and trusted? CRM_MAILBOX_CA_FILE names a CA bundle)"
        ) from exc
    except ssl.CertificateError as exc:
        raise MailboxUnreachable(f"the certificate of {_where(mailbox)}: {exc}") from exc
    except TimeoutError as exc:
        raise MailboxUnreachable(
            f"{_where(mailbox)} did not answer within {conf.mailbox_timeout():g} s "
            "(CRM_MAILBOX_TIMEOUT)"
        ) from exc
    except (OSError, EOFError) as exc:
        raise MailboxUnreachable(f"could not connect to {_where(mailbox)}: {exc}") from exc


def _imap_open(mailbox: PolledMailbox) -> imaplib.IMAP4:
    timeout = conf.mailbox_timeout()
    password = _password(mailbox)
    with _unreachable(mailbox):
        try:
            if mailbox.security == MailboxSecurity.TLS:
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    mailbox.host, mailbox.port, ssl_context=_ssl_context(), timeout=timeout
                )
            else:
                conn = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=timeout)
        except imaplib.IMAP4.error as exc:
            raise MailboxUnreachable(
                f"{_where(mailbox)} does not answer as an IMAP server: {_text(exc)}"
            ) from exc
        try:
            if mailbox.security == MailboxSecurity.STARTTLS:
                try:
                    conn.starttls(ssl_context=_ssl_context())
                except imaplib.IMAP4.error as exc:
                    raise MailboxUnreachable(
                        f"{_where(mailbox)} refused STARTTLS: {_text(exc)}"
                    ) from exc
            try:
                conn.login(mailbox.username, password)
            except imaplib.IMAP4.abort as exc:
                raise MailboxUnreachable(
                    f"{_where(mailbox)} broke the connection at login: {_text(exc)}"
                ) from exc
            except imaplib.IMAP4.error as exc:
                raise MailboxLoginFailed(
                    f"{_where(mailbox)} refused the login of {mailbox.username!r} "
                    f"(wrong username or password?): {_text(exc)}"
                ) from exc
        except BaseException:
            try:
                conn.shutdown()
            except OSError:  # the failed TLS handshake closed it already
                pass
            raise
    return conn


def _pop3_open(mailbox: PolledMailbox) -> poplib.POP3:
    timeout = conf.mailbox_timeout()
    password = _password(mailbox)
    with _unreachable(mailbox):
        try:
            if mailbox.security == MailboxSecurity.TLS:
                conn: poplib.POP3 = poplib.POP3_SSL(
                    mailbox.host, mailbox.port, context=_ssl_context(), timeout=timeout
                )
            else:
                conn = poplib.POP3(mailbox.host, mailbox.port, timeout=timeout)
        except poplib.error_proto as exc:
            raise MailboxUnreachable(
                f"{_where(mailbox)} does not answer as a POP3 server: {_text(exc)}"
            ) from exc
        try:
            if mailbox.security == MailboxSecurity.STARTTLS:
                try:
                    conn.stls(context=_ssl_context())
                except poplib.error_proto as exc:
                    raise MailboxUnreachable(
                        f"{_where(mailbox)} refused STLS: {_text(exc)}"
                    ) from exc
            try:
                conn.user(mailbox.username)
                conn.pass_(password)
            except poplib.error_proto as exc:
                raise MailboxLoginFailed(
                    f"{_where(mailbox)} refused the login of {mailbox.username!r} "
                    f"(wrong username or password?): {_text(exc)}"
                ) from exc
        except BaseException:
            conn.close()
            raise
    return conn


def _imap_select(mailbox: PolledMailbox, conn: imaplib.IMAP4, *, readonly: bool) -> tuple[int, int]:
    """Open the folder; its UIDVALIDITY and how many messages it holds."""
    typ, data = conn.select(_quote(mailbox.folder), readonly=readonly)
    if typ != "OK":
        raise MailboxLoginFailed(
            f"the folder {mailbox.folder!r} cannot be opened on {_where(mailbox)}: "
            + _text(Exception(*data))
        )
    _, values = conn.response("UIDVALIDITY")
    try:
        return int(values[0]), int(data[0] or 0)
    except (TypeError, ValueError, IndexError) as exc:
        raise MailboxRefused(f"{_where(mailbox)} gave no UIDVALIDITY for the folder") from exc


def mailbox_test_connection(*, mailbox: PolledMailbox) -> str:
    """Connect, log in and open the folder (IMAP) or the maildrop (POP3), changing
    nothing; a sentence saying what was found, or the ``ApplicationError`` naming why
    not."""
    mailbox_validate(mailbox=mailbox)
    security = MailboxSecurity(mailbox.security).name
    if mailbox.protocol == MailboxProtocol.IMAP:
        conn = _imap_open(mailbox)
        try:
            with _unreachable(mailbox):
                _, count = _imap_select(mailbox, conn, readonly=True)
        finally:
            _imap_close(conn)
        return (
            f"connected to {_where(mailbox)} ({security}) as {mailbox.username}: "
            f"{mailbox.folder} holds {count} messages"
        )
    pop = _pop3_open(mailbox)
    try:
        with _unreachable(mailbox):
            count, size = pop.stat()
            pop.quit()
    except BaseException:
        pop.close()
        raise
    return (
        f"connected to {_where(mailbox)} ({security}) as {mailbox.username}: "
        f"the maildrop holds {count} messages ({size:,} bytes)"
    )


def _imap_close(conn: imaplib.IMAP4) -> None:
    try:
        conn.logout()
    except (*_CONNECTION_ERRORS,):
        conn.shutdown()


def _pop3_close(conn: poplib.POP3, *, commit: bool) -> None:
    """QUIT (the server deletes what was marked) or, when ``commit`` is false, only
    close (a POP3 server deletes nothing without QUIT)."""
    if commit:
        conn.quit()
        return
    conn.close()


# --- storing one message ----------------------------------------------------------------


def _store(mailbox: PolledMailbox, *, uid: str, raw: bytes, done: bool, result: PollResult) -> bool:
    """Keep and read one fetched message (``inbound_message_receive``) and record its UID
    in the same transaction; True when the server step (mark, move, delete) is due for
    it, False when it was refused. Mail kept but not made an email (blocked for an
    unapproved address, unreadable, waiting for a worker) is accepted: staff see it."""
    started = timezone.now()
    is_imap = mailbox.protocol == MailboxProtocol.IMAP
    owner = mailbox.owner
    try:
        with transaction.atomic():
            kept = inbound_message_receive(
                raw=raw,
                route=str(mailbox.protocol),
                # The message is in this mailbox: a blind copy reaches its owner too.
                recipients=[owner.email] if owner is not None and owner.email else [],
            )
            if kept.status == InboundStatus.REFUSED:
                refused = kept.reason or "refused"
            else:
                refused = ""
                duplicate = kept.received_at < started
                PolledMessage.objects.create(
                    mailbox=mailbox,
                    uid=uid,
                    outcome=PolledMessageOutcome.DUPLICATE
                    if duplicate
                    else PolledMessageOutcome.STORED,
                    email=kept.email,
                    reason=""
                    if kept.email
                    else f"kept as inbound message {kept.pk} ({kept.status})",
                    done=done,
                )
                PolledMailbox.objects.filter(pk=mailbox.pk).update(
                    last_uid=int(uid) if is_imap else F("last_uid"),
                    stored_count=F("stored_count") + (0 if duplicate else 1),
                )
    except ApplicationError as exc:
        _refuse(mailbox, uid=uid, reason=exc.message, result=result)
        return False
    except (OSError, DatabaseError) as exc:
        result.errors += 1
        raise _StoreFailed(f"message {uid} could not be stored now: {exc}") from exc
    if refused:
        # Its raw is kept and listed for staff with the reason; never taken again.
        _refuse(mailbox, uid=uid, reason=refused, result=result)
        return False
    if is_imap:
        mailbox.last_uid = int(uid)
    if duplicate:
        result.duplicates += 1
    else:
        result.stored += 1
    logger.info(
        "mailbox %s: message %s %s as inbound message %s (%s, email %s)",
        mailbox.pk,
        uid,
        "was kept before" if duplicate else "kept",
        kept.pk,
        kept.status,
        kept.email_id,
    )
    return True


def _refuse(mailbox: PolledMailbox, *, uid: str, reason: str, result: PollResult) -> None:
    """Record a refused message: never taken again, left on the server untouched."""
    text = f"message {uid} refused: {reason}"
    logger.warning("mailbox %s (%s): %s", mailbox.pk, mailbox, text)
    result.refused += 1
    with transaction.atomic():
        if mailbox.protocol == MailboxProtocol.IMAP:
            mailbox.last_uid = int(uid)
        else:
            PolledMessage.objects.create(
                mailbox=mailbox,
                uid=uid,
                outcome=PolledMessageOutcome.REFUSED,
                reason=reason,
                done=True,
            )
        PolledMailbox.objects.filter(pk=mailbox.pk).update(
            last_uid=mailbox.last_uid,
            refused_count=F("refused_count") + 1,
            last_refusal=f"{timezone.now():%Y-%m-%d %H:%M} {text}"[:2000],
        )


# --- IMAP -------------------------------------------------------------------------------


def _imap_after_store(mailbox: PolledMailbox, conn: imaplib.IMAP4, uids: list[str]) -> None:
    """Mark, move or delete the stored messages on the server; then forget their rows
    (``last_uid`` covers them)."""
    if not uids:
        return
    uid_set = ",".join(uids)
    after = mailbox.after_store
    if after == MailboxAfterStore.MARK_SEEN:
        replies = [conn.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Seen)")]
    elif after == MailboxAfterStore.MOVE and "MOVE" in conn.capabilities:
        replies = [conn.uid("MOVE", uid_set, _quote(mailbox.move_to))]
    else:
        replies = []
        if after == MailboxAfterStore.MOVE:
            replies.append(conn.uid("COPY", uid_set, _quote(mailbox.move_to)))
        if all(typ == "OK" for typ, _ in replies):
            replies.append(conn.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)"))
            if "UIDPLUS" in conn.capabilities:
                replies.append(conn.uid("EXPUNGE", uid_set))
            else:
                replies.append(conn.expunge())
    for typ, data in replies:
        if typ != "OK":
            raise MailboxRefused(
                f"{_where(mailbox)} refused to {MailboxAfterStore(after).label.lower()} "
                f"messages {uid_set}: " + _text(Exception(*data))
            )
    PolledMessage.objects.filter(mailbox=mailbox, uid__in=uids).delete()


_SIZE = re.compile(rb"UID (\d+)|RFC822\.SIZE (\d+)")


def _imap_sizes(conn: imaplib.IMAP4, uids: list[int]) -> dict[int, int]:
    _, data = conn.uid("FETCH", ",".join(map(str, uids)), "(UID RFC822.SIZE)")
    sizes: dict[int, int] = {}
    for item in data:
        line = item[0] if isinstance(item, tuple) else item
        if not isinstance(line, bytes):
            continue
        uid = size = None
        for uid_match, size_match in _SIZE.findall(line):
            uid = int(uid_match) if uid_match else uid
            size = int(size_match) if size_match else size
        if uid is not None and size is not None:
            sizes[uid] = size
    return sizes


def _imap_fetch(conn: imaplib.IMAP4, uid: int) -> bytes | None:
    _, data = conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
    for item in data:
        if isinstance(item, tuple) and isinstance(item[1], bytes):
            return item[1]
    return None  # expunged meanwhile


def _imap_poll(mailbox: PolledMailbox, result: PollResult) -> None:
    conn = _imap_open(mailbox)
    try:
        uidvalidity, _ = _imap_select(mailbox, conn, readonly=False)
        if uidvalidity != mailbox.uidvalidity:
            if mailbox.uidvalidity is not None:
                logger.warning(
                    "mailbox %s: UIDVALIDITY changed from %s to %s: tracking starts over",
                    mailbox.pk,
                    mailbox.uidvalidity,
                    uidvalidity,
                )
            with transaction.atomic():
                PolledMessage.objects.filter(mailbox=mailbox).delete()
                mailbox.uidvalidity, mailbox.last_uid = uidvalidity, 0
                PolledMailbox.objects.filter(pk=mailbox.pk).update(
                    uidvalidity=uidvalidity, last_uid=0
                )
        # What an earlier poll stored but could not finish on the server.
        pending = list(
            PolledMessage.objects.filter(mailbox=mailbox, done=False).values_list("uid", flat=True)
        )
        _imap_after_store(mailbox, conn, pending)
        result.finished += len(pending)

        _, data = conn.uid("SEARCH", f"UID {mailbox.last_uid + 1}:*")
        uids = sorted(int(u) for u in (data[0] or b"").split() if int(u) > mailbox.last_uid)
        limit = conf.mailbox_max_messages()
        result.more = len(uids) > limit
        uids = uids[:limit]
        sizes = _imap_sizes(conn, uids) if uids else {}
        max_message, budget = conf.mailbox_max_message_bytes(), conf.mailbox_max_poll_bytes()
        whole = budget
        done: list[str] = []
        try:
            for uid in uids:
                size = sizes.get(uid)
                if size is None:
                    continue  # expunged meanwhile
                if size > max_message:
                    _refuse(
                        mailbox,
                        uid=str(uid),
                        reason=f"the server reports {size:,} bytes, over the limit of "
                        f"{max_message:,} bytes (CRM_MAILBOX_MAX_MESSAGE_BYTES); not downloaded",
                        result=result,
                    )
                    continue
                if size > budget and budget < whole:  # one message over the budget: alone
                    result.more = True
                    break
                budget -= size
                raw = _imap_fetch(conn, uid)
                if raw is not None and _store(
                    mailbox, uid=str(uid), raw=raw, done=False, result=result
                ):
                    done.append(str(uid))
        except (_StoreFailed, *_CONNECTION_ERRORS):
            # What was stored before the failure is finished on the server now, if the
            # connection still serves (else by the next poll).
            try:
                _imap_after_store(mailbox, conn, done)
            except (MailboxRefused, *_CONNECTION_ERRORS):
                pass
            raise
        _imap_after_store(mailbox, conn, done)
    finally:
        _imap_close(conn)


# --- POP3 -------------------------------------------------------------------------------


def _pop3_listing(lines: list[bytes]) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in lines:
        number, _, value = line.decode("ascii", errors="replace").partition(" ")
        found[value.strip()] = int(number)
    return found


def _pop3_poll(mailbox: PolledMailbox, result: PollResult) -> None:
    conn = _pop3_open(mailbox)
    commit = False
    marked: list[str] = []
    try:
        on_server = _pop3_listing(conn.uidl()[1])  # UIDL -> message number
        sizes = {int(n): int(s) for n, s in (x.split()[:2] for x in conn.list()[1])}
        known = dict(PolledMessage.objects.filter(mailbox=mailbox).values_list("uid", "done"))
        gone = [uid for uid in known if uid not in on_server]  # deleted: forget them
        for start in range(0, len(gone), _DELETE_CHUNK):
            PolledMessage.objects.filter(
                mailbox=mailbox, uid__in=gone[start : start + _DELETE_CHUNK]
            ).delete()
        delete = mailbox.after_store == MailboxAfterStore.DELETE
        if delete:  # stored by an earlier poll whose QUIT never came
            for uid, is_done in known.items():
                if not is_done and uid in on_server:
                    conn.dele(on_server[uid])
                    marked.append(uid)
                    result.finished += 1
        new = [uid for uid in on_server if uid not in known]
        limit = conf.mailbox_max_messages()
        result.more = len(new) > limit
        max_message, budget = conf.mailbox_max_message_bytes(), conf.mailbox_max_poll_bytes()
        whole = budget
        for uid in new[:limit]:
            number = on_server[uid]
            size = sizes.get(number, 0)
            if size > max_message:
                _refuse(
                    mailbox,
                    uid=uid,
                    reason=f"the server reports {size:,} bytes, over the limit of "
                    f"{max_message:,} bytes (CRM_MAILBOX_MAX_MESSAGE_BYTES); not downloaded",
                    result=result,
                )
                continue
            if size > budget and budget < whole:  # one message over the budget: alone
                result.more = True
                break
            budget -= size
            _, lines, _ = conn.retr(number)
            raw = b"\r\n".join(lines) + b"\r\n"
            if _store(mailbox, uid=uid, raw=raw, done=not delete, result=result) and delete:
                conn.dele(number)
                marked.append(uid)
        commit = True
    finally:
        try:
            _pop3_close(conn, commit=commit)
        except _CONNECTION_ERRORS:
            if commit:
                raise
        else:
            if commit and marked:  # the server deleted them at QUIT
                PolledMessage.objects.filter(mailbox=mailbox, uid__in=marked).update(done=True)


# --- polls --------------------------------------------------------------------------------


def _claim(mailbox_id: int) -> bool:
    now = timezone.now()
    return (
        PolledMailbox.objects.filter(pk=mailbox_id)
        .filter(Q(poll_lease_until__isnull=True) | Q(poll_lease_until__lt=now))
        .update(poll_lease_until=now + timedelta(seconds=conf.mailbox_lease_seconds()))
        == 1
    )


def mailbox_poll(*, mailbox: PolledMailbox) -> PollResult:
    """Poll one mailbox now (enabled or not) and return what it did.

    Failures are kept, not raised: a connection, TLS or login failure, or a message that
    could not be stored now, ends the poll with ``result.error`` and the mailbox's
    ``last_error``; the next poll tries again. A poll that gets through clears
    ``last_error``. While another poll holds the mailbox, nothing is done (``busy``).
    """
    result = PollResult(mailbox_id=mailbox.pk)
    if not _claim(mailbox.pk):
        result.busy = True
        return result
    try:
        mailbox.refresh_from_db()
        try:
            mailbox_validate(mailbox=mailbox)
            if mailbox.protocol == MailboxProtocol.IMAP:
                _imap_poll(mailbox, result)
            else:
                _pop3_poll(mailbox, result)
        except ApplicationError as exc:  # MailboxUnreachable, MailboxLoginFailed, ...
            result.error = exc.message
        except _StoreFailed as exc:
            result.error = str(exc)
        except _CONNECTION_ERRORS as exc:
            result.error = f"the connection to {_where(mailbox)} broke: {_text(exc) or exc!r}"
        now = timezone.now()
        if result.error:
            logger.warning("mailbox %s (%s): %s", mailbox.pk, mailbox, result.error)
            PolledMailbox.objects.filter(pk=mailbox.pk).update(
                last_polled_at=now, last_error=result.error[:2000], last_error_at=now
            )
        else:
            PolledMailbox.objects.filter(pk=mailbox.pk).update(last_polled_at=now, last_error="")
    finally:
        PolledMailbox.objects.filter(pk=mailbox.pk).update(poll_lease_until=None)
    mailbox.refresh_from_db()
    return result


def mailboxes_poll_all() -> list[PollResult]:
    """Poll every enabled mailbox once (the beat task); one failing mailbox does not stop
    the others, and a mailbox another poll holds is skipped."""
    results: list[PollResult] = []
    for pk in PolledMailbox.objects.filter(enabled=True).values_list("pk", flat=True):
        mailbox = PolledMailbox.objects.filter(pk=pk).first()
        if mailbox is None:
            continue
        try:
            results.append(mailbox_poll(mailbox=mailbox))
        except SoftTimeLimitExceeded:  # the task's time is up: the next beat goes on
            raise
        except Exception as exc:  # a failure of one mailbox must not starve the others
            logger.exception("mailbox %s: the poll failed", pk)
            error = f"the poll failed: {type(exc).__name__}: {exc}"[:2000]
            now = timezone.now()
            PolledMailbox.objects.filter(pk=pk).update(
                last_polled_at=now, last_error=error, last_error_at=now, poll_lease_until=None
            )
            results.append(PollResult(mailbox_id=pk, error=error))
    return results
