"""Polling a queue's or a user's mailbox over IMAP and POP3, against a real Dovecot on
loopback (tests/dovecot.py): each message stored once on its owner's email, the server
step after the store (seen, move, delete), UID tracking and its reset, crash safety,
refusals, the budget, logins and TLS (issue 12, section 1)."""

from __future__ import annotations

import poplib
import re
from email.message import EmailMessage

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from activities.errors import MailboxInvalid
from activities.models import (
    AttachmentBlob,
    Email,
    InboundMessage,
    PolledMailbox,
    PolledMessage,
    PolledMessageOutcome,
)
from activities.secrets import SecretUnreadable, seal, unseal
from activities.services.emails import email_create, email_send
from activities.services.mailboxes import (
    mailbox_poll,
    mailbox_save,
    mailbox_test_connection,
    mailbox_validate,
    mailboxes_poll_all,
)
from activities.tasks import poll_mailboxes
from crm.models import EmailApproval
from tests.dovecot import PASSWORD, Dovecot
from tests.factories import ContactFactory, PolledMailboxFactory
from tests.smtp import free_port

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4 the offer " * 200


def raw(
    n: int = 1,
    *,
    message_id: bool = True,
    sender: str | None = "Ann Lee <ann@customers.example.org>",
    to: str = "Support <support@example.com>",
    subject: str | None = None,
    attachment: bool = False,
    body: str = "Hello in plain text",
) -> bytes:
    msg = EmailMessage()
    if sender:
        msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject or f"Message {n}"
    if message_id:
        msg["Message-ID"] = f"<poll-{n}@customers.example.org>"
    msg.set_content(body)
    if attachment:
        msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="offer.pdf")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))  # as servers keep it


def imap_box(server: Dovecot, **fields) -> PolledMailbox:
    fields.setdefault("port", server.ports["imap"])
    return PolledMailboxFactory(**fields)


def pop3_box(server: Dovecot, **fields) -> PolledMailbox:
    fields.setdefault("port", server.ports["pop3"])
    fields.setdefault("after_store", "delete")
    return PolledMailboxFactory(protocol="pop3", **fields)


def flags(server: Dovecot, folder: str = "INBOX", user: str = "support") -> list[set[str]]:
    return [f - {"\\Recent"} for f, _ in server.messages(user, folder=folder)]


# --- IMAP -------------------------------------------------------------------------------


def test_imap_messages_are_stored_once_on_the_queue_with_attachments_and_marked_seen(
    org, dovecot, team_queue
):
    dovecot.append("support", raw(1, attachment=True))
    dovecot.append("support", raw(2))
    mailbox = imap_box(dovecot, queue=team_queue)

    result = mailbox_poll(mailbox=mailbox)

    assert (result.stored, result.duplicates, result.refused, result.error) == (2, 0, 0, "")
    emails = list(Email.objects.order_by("subject"))
    assert [e.subject for e in emails] == ["Message 1", "Message 2"]
    assert all(e.parties.get(role="to").queue == team_queue for e in emails)
    (attachment,) = emails[0].attachments.all()
    assert (attachment.filename, attachment.blob.size) == ("offer.pdf", len(PDF))
    assert default_storage.open(attachment.blob.file.name).read() == PDF
    assert flags(dovecot) == [{"\\Seen"}, {"\\Seen"}]
    mailbox.refresh_from_db()
    assert (mailbox.stored_count, mailbox.last_error) == (2, "")
    assert mailbox.last_uid == max(dovecot.uids("support"))
    assert mailbox.uidvalidity and mailbox.last_polled_at
    assert not PolledMessage.objects.exists()  # IMAP rows live only until the server step

    again = mailbox_poll(mailbox=mailbox)

    assert (again.stored, again.duplicates, again.refused) == (0, 0, 0)
    assert Email.objects.count() == 2 and InboundMessage.objects.count() == 2
    # The attachment's bytes and each message's raw, once each.
    assert AttachmentBlob.objects.count() == 3


def test_imap_mail_for_an_unapproved_queue_is_kept_blocked_and_taken_once(org, dovecot, team_queue):
    """The mailbox's queue lost its approval: the message is taken (kept, blocked, listed
    for approvers with the reason) and marked, not left to be fetched on every poll."""
    team_queue.email_router_access_approval = EmailApproval.PENDING
    team_queue.save()
    dovecot.append("support", raw(1))
    mailbox = imap_box(dovecot, queue=team_queue)

    result = mailbox_poll(mailbox=mailbox)

    assert (result.stored, result.refused, result.error) == (1, 0, "")
    (kept,) = InboundMessage.objects.all()
    assert (kept.status, kept.route, kept.email) == ("blocked", "imap", None)
    assert "support@example.com" in kept.reason
    assert not Email.objects.exists()
    assert flags(dovecot) == [{"\\Seen"}]
    assert mailbox_poll(mailbox=mailbox).stored == 0


def test_imap_a_mailbox_of_a_user_moves_stored_messages_to_the_folder(org, dovecot, owner):
    dovecot.append("alice", raw(1, to="alice@staff.example.com"))
    dovecot.append("alice", raw(2, to="alice@staff.example.com"), folder="Archive")
    mailbox = imap_box(
        dovecot, queue=None, user=owner, username="alice", after_store="move", move_to="Archive"
    )

    assert mailbox_poll(mailbox=mailbox).stored == 1

    assert Email.objects.get().parties.get(role="to").user == owner
    assert dovecot.messages("alice") == []
    assert len(dovecot.messages("alice", folder="Archive")) == 2


def test_imap_delete_expunges_stored_messages(org, dovecot, team_queue):
    dovecot.append("support", raw(1))
    mailbox = imap_box(dovecot, queue=team_queue, after_store="delete")

    assert mailbox_poll(mailbox=mailbox).stored == 1

    assert dovecot.messages("support") == []


def test_imap_a_new_uidvalidity_starts_tracking_over_without_duplicates(org, dovecot, team_queue):
    dovecot.append("support", raw(1), folder="Shared")
    mailbox = imap_box(dovecot, queue=team_queue, folder="Shared")
    assert mailbox_poll(mailbox=mailbox).stored == 1
    mailbox.refresh_from_db()
    first_validity = mailbox.uidvalidity
    # The folder recreated: a new UIDVALIDITY, UIDs from 1 again.
    conn = dovecot.imap("support")
    assert conn.delete("Shared")[0] == "OK"
    conn.logout()
    dovecot.append("support", raw(1), folder="Shared")
    dovecot.append("support", raw(2), folder="Shared")

    result = mailbox_poll(mailbox=mailbox)

    mailbox.refresh_from_db()
    assert mailbox.uidvalidity != first_validity
    assert (result.stored, result.duplicates) == (1, 1)  # the first by its Message-ID
    assert Email.objects.count() == 2 and mailbox.last_uid == 2


def test_imap_a_failure_after_the_store_stores_nothing_twice_and_the_next_poll_finishes(
    org, dovecot, team_queue
):
    """The server step fails after the store (the folder to move to is missing, as a crash
    between store and move would leave it): the next poll finishes the move and stores
    nothing again, also for a message without Message-ID."""
    dovecot.append("support", raw(1, message_id=False))
    dovecot.append("support", raw(2))
    mailbox = imap_box(dovecot, queue=team_queue, after_store="move", move_to="Done")

    first = mailbox_poll(mailbox=mailbox)

    assert first.stored == 2 and "refused to move" in first.error and "Done" in first.error
    mailbox.refresh_from_db()
    assert "Done" in mailbox.last_error and mailbox.last_error_at
    assert len(dovecot.messages("support")) == 2  # still on the server
    assert PolledMessage.objects.filter(mailbox=mailbox, done=False).count() == 2
    conn = dovecot.imap("support")
    conn.create("Done")
    conn.logout()

    second = mailbox_poll(mailbox=mailbox)

    assert (second.stored, second.duplicates, second.finished, second.error) == (0, 0, 2, "")
    assert Email.objects.count() == 2
    assert (
        dovecot.messages("support") == [] and len(dovecot.messages("support", folder="Done")) == 2
    )
    mailbox.refresh_from_db()
    assert mailbox.last_error == "" and not PolledMessage.objects.exists()


def test_imap_a_message_that_cannot_be_stored_now_stays_on_the_server_for_the_next_poll(
    org, dovecot, team_queue, settings, tmp_path
):
    """A failure between fetch and store (the blob storage unwritable) loses nothing: the
    message is not recorded and not marked, and the next poll stores it, once."""
    dovecot.append("support", raw(1, attachment=True))
    mailbox = imap_box(dovecot, queue=team_queue)
    working = settings.STORAGES
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("a file where the blob folder should be")
    settings.STORAGES = {
        **working,
        "default": {**working["default"], "OPTIONS": {"location": str(not_a_folder)}},
    }

    failed = mailbox_poll(mailbox=mailbox)

    assert (failed.stored, failed.errors) == (0, 1) and "could not be stored now" in failed.error
    assert not Email.objects.exists() and not PolledMessage.objects.exists()
    assert flags(dovecot) == [set()]
    mailbox.refresh_from_db()
    assert "could not be stored now" in mailbox.last_error
    settings.STORAGES = working

    assert mailbox_poll(mailbox=mailbox).stored == 1
    assert Email.objects.count() == 1 and flags(dovecot) == [{"\\Seen"}]


def test_imap_a_refused_message_is_recorded_left_alone_and_not_taken_again(
    org, dovecot, team_queue
):
    dovecot.append("support", raw(1, sender=None))  # no From: inbound refuses it
    dovecot.append("support", raw(2))
    mailbox = imap_box(dovecot, queue=team_queue)

    result = mailbox_poll(mailbox=mailbox)

    assert (result.stored, result.refused, result.error) == (1, 1, "")
    assert list(Email.objects.values_list("subject", flat=True)) == ["Message 2"]
    mailbox.refresh_from_db()
    assert mailbox.refused_count == 1
    assert re.search(r"message \d+ refused: the message has no readable From", mailbox.last_refusal)
    assert flags(dovecot) == [set(), {"\\Seen"}]  # the refused one untouched
    assert mailbox_poll(mailbox=mailbox).refused == 0  # not taken again


def test_imap_a_message_over_the_limit_is_refused_by_its_reported_size_undownloaded(
    org, dovecot, team_queue, settings
):
    big, small = raw(1, body="x" * 6000), raw(2)
    settings.CRM_MAILBOX_MAX_MESSAGE_BYTES = 4000
    dovecot.append("support", big)
    dovecot.append("support", small)
    mailbox = imap_box(dovecot, queue=team_queue)
    since = dovecot.log_size()

    result = mailbox_poll(mailbox=mailbox)

    assert (result.stored, result.refused) == (1, 1)
    mailbox.refresh_from_db()
    assert f"the server reports {len(big):,} bytes" in mailbox.last_refusal
    # Dovecot counts the bodies it sent in the poll's session: only the small message's.
    logout = dovecot.wait_for_log(
        r"imap\(support\).*Logged out .*body_count=([1-9]\d*) body_bytes=(\d+)", since=since
    )
    assert (int(logout.group(1)), int(logout.group(2))) == (1, len(small))


def test_imap_a_poll_takes_at_most_its_budget_and_the_rest_next_time(
    org, dovecot, team_queue, settings
):
    settings.CRM_MAILBOX_MAX_MESSAGES = 2
    for n in range(1, 4):
        dovecot.append("support", raw(n))
    mailbox = imap_box(dovecot, queue=team_queue)

    first = mailbox_poll(mailbox=mailbox)
    second = mailbox_poll(mailbox=mailbox)

    assert (first.stored, first.more, second.stored, second.more) == (2, True, 1, False)


def test_imap_a_wrong_password_is_kept_in_last_error_and_the_next_poll_retries(
    org, dovecot, team_queue
):
    dovecot.append("support", raw(1))
    mailbox = imap_box(dovecot, queue=team_queue, secret_sealed=seal("wrong"))

    result = mailbox_poll(mailbox=mailbox)

    mailbox.refresh_from_db()
    assert "refused the login of 'support'" in result.error
    assert "wrong username or password" in mailbox.last_error
    assert Email.objects.count() == 0
    mailbox_save(mailbox=mailbox, secret=PASSWORD)
    assert mailbox_poll(mailbox=mailbox).stored == 1
    mailbox.refresh_from_db()
    assert mailbox.last_error == ""


@pytest.mark.parametrize(("security", "port"), [("tls", "imaps"), ("starttls", "imap")])
def test_imap_over_tls_verifies_the_server_with_the_configured_ca(
    org, dovecot, team_queue, settings, security, port
):
    dovecot.append("support", raw(1))
    mailbox = imap_box(dovecot, queue=team_queue, security=security, port=dovecot.ports[port])
    settings.CRM_MAILBOX_CA_FILE = ""  # the system's CAs do not know the test CA

    refused = mailbox_poll(mailbox=mailbox)

    assert "TLS with 127.0.0.1" in refused.error and "CERTIFICATE_VERIFY_FAILED" in refused.error
    settings.CRM_MAILBOX_CA_FILE = str(dovecot.ca_file)
    assert "INBOX holds 1 messages" in mailbox_test_connection(mailbox=mailbox)
    assert mailbox_poll(mailbox=mailbox).stored == 1


def test_a_reply_with_the_tracking_token_lands_on_the_sent_email(org, dovecot, owner, team_queue):
    ann = ContactFactory(email="ann@customers.example.org")
    sent = email_send(
        email=email_create(actor=owner, to=[ann], regarding=ann, subject="Offer"), actor=owner
    )
    dovecot.append("support", raw(1, subject=f"Re: Offer {sent.tracking_token}"))

    assert mailbox_poll(mailbox=imap_box(dovecot, queue=team_queue)).stored == 1

    reply = Email.objects.get(direction="incoming")
    assert reply.parent_id == sent.pk and reply.regarding == ann


# --- POP3 -------------------------------------------------------------------------------


@pytest.mark.parametrize(("security", "port"), [("none", "pop3"), ("tls", "pop3s")])
def test_pop3_messages_are_stored_once_and_deleted_from_the_server(
    org, dovecot, team_queue, security, port
):
    dovecot.append("pop", raw(1, attachment=True))
    mailbox = pop3_box(
        dovecot, queue=team_queue, username="pop", security=security, port=dovecot.ports[port]
    )

    result = mailbox_poll(mailbox=mailbox)

    assert (result.stored, result.error) == (1, "")
    email = Email.objects.get()
    assert email.parties.get(role="to").queue == team_queue
    assert email.attachments.get().blob.size == len(PDF)
    assert dovecot.messages("pop") == []
    assert mailbox_poll(mailbox=mailbox).stored == 0
    assert not PolledMessage.objects.exists()  # gone from the server: forgotten


def test_pop3_keep_remembers_each_uidl_and_forgets_it_once_the_message_is_gone(
    org, dovecot, team_queue
):
    dovecot.append("pop", raw(1, message_id=False))
    mailbox = pop3_box(dovecot, queue=team_queue, username="pop", after_store="keep")

    assert mailbox_poll(mailbox=mailbox).stored == 1
    assert mailbox_poll(mailbox=mailbox).stored == 0  # by its UIDL: no Message-ID here

    assert Email.objects.count() == 1 and len(dovecot.messages("pop")) == 1
    assert PolledMessage.objects.get().outcome == PolledMessageOutcome.STORED
    dovecot.clear("pop")
    mailbox_poll(mailbox=mailbox)
    assert not PolledMessage.objects.exists()


def test_pop3_a_connection_lost_before_quit_stores_nothing_twice_and_deletes_next_poll(
    org, dovecot, team_queue, monkeypatch
):
    """POP3 deletes only at QUIT: the connection dropped before it (a crash after the
    store) leaves the message on the server; the next poll deletes it and stores
    nothing again, though it has no Message-ID."""
    dovecot.append("pop", raw(1, message_id=False))
    mailbox = pop3_box(dovecot, queue=team_queue, username="pop")

    def dropped(self):
        self.close()
        raise poplib.error_proto("-ERR connection lost")

    monkeypatch.setattr(poplib.POP3, "quit", dropped)
    first = mailbox_poll(mailbox=mailbox)
    monkeypatch.undo()

    assert first.stored == 1 and "connection lost" in first.error
    assert len(dovecot.messages("pop")) == 1
    second = mailbox_poll(mailbox=mailbox)
    assert (second.stored, second.duplicates, second.finished, second.error) == (0, 0, 1, "")
    assert Email.objects.count() == 1 and dovecot.messages("pop") == []


def test_pop3_refuses_a_message_without_from_and_one_over_the_size_limit_and_stores_the_rest(
    org, dovecot, team_queue, settings
):
    settings.CRM_MAILBOX_MAX_MESSAGE_BYTES = 4000
    dovecot.append("pop", raw(1, sender=None))
    dovecot.append("pop", raw(2, body="x" * 6000))
    dovecot.append("pop", raw(3))
    mailbox = pop3_box(dovecot, queue=team_queue, username="pop")

    result = mailbox_poll(mailbox=mailbox)

    assert (result.stored, result.refused) == (1, 2)
    assert list(Email.objects.values_list("subject", flat=True)) == ["Message 3"]
    assert len(dovecot.messages("pop")) == 2  # the refused ones stay on the server
    reasons = PolledMessage.objects.filter(outcome="refused").values_list("reason", flat=True)
    assert any("no readable From" in r for r in reasons)
    assert any("the server reports" in r for r in reasons)
    assert mailbox_poll(mailbox=mailbox).refused == 0


def test_pop3_a_wrong_password_is_kept_in_last_error(org, dovecot, team_queue):
    mailbox = pop3_box(dovecot, queue=team_queue, username="pop", secret_sealed=seal("nope"))

    assert "refused the login of 'pop'" in mailbox_poll(mailbox=mailbox).error
    mailbox.refresh_from_db()
    assert "wrong username or password" in mailbox.last_error


# --- all mailboxes: the task and the command ------------------------------------------


def test_polling_all_goes_on_past_a_failing_mailbox_and_skips_a_busy_one(org, dovecot, team_queue):
    dovecot.append("support", raw(1))
    unreachable = imap_box(dovecot, queue=team_queue, port=free_port())
    good = imap_box(dovecot, queue=team_queue)
    busy = imap_box(
        dovecot, queue=team_queue, poll_lease_until=timezone.now() + timezone.timedelta(minutes=5)
    )
    imap_box(dovecot, queue=team_queue, enabled=False)

    results = {r.mailbox_id: r for r in mailboxes_poll_all()}

    assert set(results) == {unreachable.pk, good.pk, busy.pk}
    assert "could not connect to 127.0.0.1" in results[unreachable.pk].error
    assert results[good.pk].stored == 1 and results[busy.pk].busy
    unreachable.refresh_from_db()
    assert "could not connect" in unreachable.last_error


def test_the_task_polls_every_enabled_mailbox(org, dovecot, team_queue, settings):
    dovecot.append("support", raw(1))
    imap_box(dovecot, queue=team_queue)

    assert poll_mailboxes.apply().get()["stored"] == 1
    assert settings.CELERY_BEAT_SCHEDULE["poll-mailboxes"]["task"] == poll_mailboxes.name


def test_the_command_polls_once_and_says_what_it_did(org, dovecot, team_queue, capsys):
    dovecot.append("support", raw(1))
    disabled = imap_box(dovecot, queue=team_queue, enabled=False)

    call_command("poll_mailboxes", "--once")
    assert "no enabled mailbox to poll" in capsys.readouterr().out
    call_command("poll_mailboxes", "--once", "--mailbox", str(disabled.pk))
    assert f"mailbox {disabled.pk} support@127.0.0.1 (IMAP): 1 stored" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no polled mailbox has the id 0"):
        call_command("poll_mailboxes", "--once", "--mailbox", "0")
    disabled.secret_sealed = seal("wrong")
    disabled.save()
    with pytest.raises(SystemExit):
        call_command("poll_mailboxes", "--once", "--mailbox", str(disabled.pk))
    assert "refused the login" in capsys.readouterr().err


# --- settings and secrets ----------------------------------------------------------------


def test_plain_text_is_refused_beyond_loopback_unless_allowed(db, team_queue, settings):
    mailbox = PolledMailboxFactory.build(queue=team_queue, host="mail.example.com")
    with pytest.raises(MailboxInvalid, match="clear text"):
        mailbox_validate(mailbox=mailbox)
    settings.CRM_MAILBOX_ALLOW_PLAIN = True
    mailbox_validate(mailbox=mailbox)


def test_the_password_is_stored_encrypted_and_opens_with_a_fallback_key(db, team_queue, settings):
    mailbox = mailbox_save(
        mailbox=PolledMailboxFactory.build(queue=team_queue, secret_sealed=""), secret="pw-1"
    )
    assert "pw-1" not in mailbox.secret_sealed and unseal(mailbox.secret_sealed) == "pw-1"
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "another-key-0123456789012345678901234567890123456789"
    assert unseal(mailbox.secret_sealed) == "pw-1"
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(SecretUnreadable):
        unseal(mailbox.secret_sealed)
    assert "cannot be decrypted" in mailbox_poll(mailbox=mailbox).error


def test_changing_the_folder_starts_the_tracking_over(db, team_queue):
    mailbox = PolledMailboxFactory(queue=team_queue, uidvalidity=7, last_uid=40)
    mailbox.folder = "Other"
    mailbox_save(mailbox=mailbox)
    mailbox.refresh_from_db()
    assert (mailbox.uidvalidity, mailbox.last_uid) == (None, 0)
