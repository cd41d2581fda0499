"""Stored bytes are checked against their size and SHA-256 whenever they are read back:
downloads (the API and the staff pages) and delivery. The file-system storage here; the
same on S3 in ``test_blob_storage_s3.py``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from django.conf import settings

from activities.errors import AttachmentCorrupted
from activities.models import ActivityMimeAttachment, Email, EmailStatus
from activities.services.attachments import attachment_store
from activities.services.blobs import blob_open_verified
from activities.services.delivery import email_deliver
from activities.services.emails import email_create, email_send
from activities.storage import BlobFileSystemStorage
from tests.api import client_for
from tests.pages import signed_in

pytestmark = pytest.mark.django_db

DATA = os.urandom(200_000)  # several read chunks


def stored_path(attachment: ActivityMimeAttachment) -> Path:
    return Path(settings.MEDIA_ROOT) / attachment.blob.file.name


def content_url(attachment: ActivityMimeAttachment) -> str:
    return f"/api/v1/attachments/{attachment.pk}/content/"


def page_url(attachment: ActivityMimeAttachment) -> str:
    return f"/mail/{attachment.email_id}/attachments/{attachment.pk}/"


@pytest.fixture
def attachment(owner) -> ActivityMimeAttachment:
    draft = email_create(actor=owner, to=["ann@example.com"], subject="Figures", body_text="Hi")
    stored, _ = attachment_store(owner=draft, source=DATA, filename="figures.bin")
    return stored


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "one byte flipped": flip_one_byte,
    "cut short": lambda path: path.write_bytes(path.read_bytes()[:-1]),
    "a byte more": lambda path: path.write_bytes(path.read_bytes() + b"\0"),
    "other bytes": lambda path: path.write_bytes(b"x" * len(DATA)),
}


def test_intact_bytes_read_back_verified_and_rewound(attachment):
    fh = blob_open_verified(blob=attachment.blob, label=attachment.filename)
    with fh:
        assert fh.read() == DATA


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupted_bytes_are_refused_naming_the_attachment_and_logged(attachment, corrupt, caplog):
    corrupt(stored_path(attachment))

    with caplog.at_level(logging.ERROR, logger="activities.storage"):
        with pytest.raises(AttachmentCorrupted, match=r'attachment "figures\.bin" are corrupted'):
            blob_open_verified(blob=attachment.blob, label=attachment.filename)

    [record] = [r for r in caplog.records if r.name == "activities.storage"]
    assert attachment.blob.file.name in record.getMessage()
    assert attachment.blob.sha256 in record.getMessage()


def test_a_much_larger_file_is_refused_without_reading_it_to_the_end(attachment, monkeypatch):
    stored_path(attachment).write_bytes(DATA + os.urandom(5 * len(DATA)))
    reads: list[int] = []
    real_open = BlobFileSystemStorage.open

    class Counting:
        def __init__(self, raw):
            self.raw = raw

        def read(self, n=-1):
            chunk = self.raw.read(n)
            reads.append(len(chunk))
            return chunk

        def __getattr__(self, name):
            return getattr(self.raw, name)

    def counting_open(self, name, mode="rb"):
        fh = real_open(self, name, mode)
        fh.file = Counting(fh.file)
        return fh

    monkeypatch.setattr(BlobFileSystemStorage, "open", counting_open)

    with pytest.raises(AttachmentCorrupted):
        blob_open_verified(blob=attachment.blob, label=attachment.filename)

    assert sum(reads) == len(DATA) + 1


def test_api_download_of_a_corrupted_attachment_is_502_naming_it_and_sends_no_byte(
    owner, attachment
):
    flip_one_byte(stored_path(attachment))

    answer = client_for(owner).get(content_url(attachment))

    assert answer.status_code == 502
    assert answer["Content-Type"] == "application/json"
    body = answer.json()
    assert body["code"] == "attachment_corrupted"
    assert 'attachment "figures.bin"' in body["detail"]
    assert DATA[:64] not in answer.content


def test_page_download_of_a_corrupted_attachment_is_502_naming_it(owner, attachment):
    flip_one_byte(stored_path(attachment))

    answer = signed_in(owner).get(page_url(attachment))

    assert answer.status_code == 502
    assert answer["Content-Type"] == "text/plain; charset=utf-8"
    assert 'attachment "figures.bin"' in answer.content.decode()


def test_page_download_of_an_intact_attachment_is_the_bytes(owner, attachment):
    answer = signed_in(owner).get(page_url(attachment))

    assert answer.status_code == 200
    assert b"".join(answer.streaming_content) == DATA
    assert answer["Content-Length"] == str(len(DATA))


def test_delivery_of_an_email_with_a_corrupted_attachment_sends_nothing_and_fails_naming_it(
    owner, attachment, smtp_settings, caplog
):
    email = email_send(email=attachment.email, actor=owner)
    flip_one_byte(stored_path(attachment))

    with caplog.at_level(logging.ERROR, logger="activities.storage"):
        result = email_deliver(email_id=email.pk, owner="test-worker")

    assert result.outcome == "failed"
    assert smtp_settings.messages == []
    email = Email.objects.get(pk=email.pk)
    # Permanent: nothing mends the bytes but attaching the file again, which a failed
    # email allows (it is editable, like a draft).
    assert email.status == EmailStatus.FAILED
    assert email.attempts == 1
    assert 'attachment "figures.bin" are corrupted' in email.last_error
    assert any(r.name == "activities.storage" for r in caplog.records)


def test_delivery_of_the_intact_attachment_sends_its_bytes(owner, attachment, smtp_settings):
    email = email_send(email=attachment.email, actor=owner)

    result = email_deliver(email_id=email.pk, owner="test-worker")

    assert result.outcome == "sent"
    [received] = smtp_settings.messages
    [part] = list(received.message.iter_attachments())
    assert part.get_filename() == "figures.bin"
    assert part.get_payload(decode=True) == DATA
