"""Issue 12's first "Done when", end to end over the real routes: a reply in a mailbox of
the local Dovecot, with the sent email's tracking token in its subject, is on the
original's page after one poll, threaded, its attachment stored once; the same reply
posted again as a provider's webhook (SparkPost's inbound relay, to the live server)
adds nothing."""

from __future__ import annotations

import base64
import json
import urllib.request
from email.message import EmailMessage

import pytest

from activities.models import ActivityMimeAttachment, AttachmentBlob, Email, InboundMessage
from activities.services.emails import email_create, email_send
from activities.services.mailboxes import mailbox_poll
from tests.factories import ContactFactory, PolledMailboxFactory
from tests.pages import signed_in

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "hooks:s3cret-for-tests"
OFFER = b"%PDF-1.4 the signed offer " * 100


def reply_to(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann Lee <ann@customers.example.org>"
    msg["To"] = "Support <support@example.com>"
    msg["Subject"] = f"Re: {subject}"
    msg["Message-ID"] = "<reply-done-when@customers.example.org>"
    msg.set_content("Signed, see attached.")
    msg.add_attachment(OFFER, maintype="application", subtype="pdf", filename="signed.pdf")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def post_sparkpost(url: str, raw: bytes) -> int:
    batch = [
        {
            "msys": {
                "relay_message": {
                    "content": {
                        "email_rfc822": base64.b64encode(raw).decode(),
                        "email_rfc822_is_base64": True,
                        "headers": [],
                        "to": ["support@example.com"],
                    },
                    "msg_from": "ann@customers.example.org",
                    "rcpt_to": "support@example.com",
                    "protocol": "smtp",
                }
            }
        }
    ]
    request = urllib.request.Request(url, data=json.dumps(batch).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", "Basic " + base64.b64encode(SECRET.encode()).decode())
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status


def test_a_reply_polled_from_dovecot_is_threaded_on_the_original_and_a_webhook_copy_adds_nothing(
    org, owner, team_queue, dovecot, live_server, settings
):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    ann = ContactFactory(email="ann@customers.example.org")
    sent = email_send(
        email=email_create(
            actor=owner, sender=team_queue, to=[ann], regarding=ann, subject="Offer"
        ),
        actor=owner,
    )
    raw = reply_to(f"Offer {sent.tracking_token}")
    dovecot.append("support", raw)

    result = mailbox_poll(
        mailbox=PolledMailboxFactory(queue=team_queue, port=dovecot.ports["imap"])
    )

    assert (result.stored, result.error) == (1, "")
    reply = Email.objects.get(direction="incoming")
    assert (reply.parent_id, reply.regarding) == (sent.pk, ann)
    assert reply.parties.get(role="from").contact == ann
    (attachment,) = reply.attachments.all()
    assert attachment.blob.size == len(OFFER)
    page = signed_in(owner).get(f"/mail/{sent.pk}/").content.decode()
    conversation = page.split('id="email-conversation-title"')[1].split("</section>")[0]
    assert f"/mail/{reply.pk}/" in conversation

    blobs = AttachmentBlob.objects.count()
    assert post_sparkpost(f"{live_server.url}/anymail/sparkpost/inbound/", raw) == 200

    assert Email.objects.filter(direction="incoming").count() == 1
    assert InboundMessage.objects.count() == 1
    assert ActivityMimeAttachment.objects.filter(blob=attachment.blob).count() == 1
    assert AttachmentBlob.objects.count() == blobs
