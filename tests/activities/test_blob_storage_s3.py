"""Blobs in S3-compatible object storage: django-storages' S3Storage against a real S3
server (moto's server mode, its own process on loopback), a fresh bucket per test.

Uploads land at their content-addressed key, the same bytes uploaded at once end as one
row and one object, downloads and delivery read the object back verified, a corrupted
object is never served or sent, and the collector sweeps orphan objects."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from activities import storage as storage_module
from activities.models import ActivityMimeAttachment, AttachmentBlob, Email, EmailStatus, blob_path
from activities.services import blobs as blobs_module
from activities.services.attachments import attachment_store
from activities.services.blobs import blob_collect_garbage
from activities.services.delivery import email_deliver
from activities.services.emails import email_create, email_send
from crm.models import Organization
from tests.api import client_for
from tests.factories import EmailFactory
from tests.s3 import S3Server
from tests.services import need_postgresql

# moto's server is a process of its own.
pytestmark = [pytest.mark.django_db, pytest.mark.slow]

DATA = os.urandom(150_000)  # several read chunks
LIST = "/api/v1/attachments/"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def s3_server():
    server = S3Server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, settings):
    """The ``default`` storage is S3Storage on a new bucket of the real server."""
    bucket = s3_server.new_bucket()
    settings.STORAGES = {**settings.STORAGES, "default": s3_server.storage_settings(bucket)}
    assert default_storage.bucket_name == bucket  # the lazy default was reset
    client = s3_server.client()
    client.bucket = bucket
    return client


def keys(s3) -> list[str]:
    answer = s3.list_objects_v2(Bucket=s3.bucket)
    return sorted(entry["Key"] for entry in answer.get("Contents", ()))


def object_bytes(s3, key: str) -> bytes:
    return s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read()


def overwrite(s3, key: str, data: bytes) -> None:
    s3.put_object(Bucket=s3.bucket, Key=key, Body=data)


@pytest.fixture
def draft(owner):
    return email_create(actor=owner, to=["ann@example.com"], subject="Figures", body_text="Hi")


def upload(user, email, data: bytes, name: str = "figures.bin"):
    form = {
        "object_type": "email",
        "object_id": email.pk,
        "file": SimpleUploadedFile(name, data, content_type="application/octet-stream"),
    }
    return client_for(user).post(LIST, form, format="multipart")


def test_an_upload_through_the_api_lands_in_the_bucket_at_its_content_addressed_key(
    s3, owner, draft
):
    answer = upload(owner, draft, DATA)

    assert answer.status_code == 201, answer.content
    assert (answer.json()["attachment_id"], answer.json()["reused"]) == (sha(DATA), False)
    blob = AttachmentBlob.objects.get()
    assert blob.file.name == blob_path(sha(DATA)) == f"blobs/sha256/{sha(DATA)[:2]}/{sha(DATA)[2:]}"
    assert keys(s3) == [blob.file.name]
    assert object_bytes(s3, blob.file.name) == DATA

    again = upload(owner, draft, DATA, "copy.bin")

    assert again.json()["reused"] is True
    assert keys(s3) == [blob.file.name]


def test_a_download_through_the_api_returns_the_bytes(s3, owner, draft):
    attachment, _ = attachment_store(owner=draft, source=DATA, filename="figures.bin")

    answer = client_for(owner).get(f"/api/v1/attachments/{attachment.pk}/content/")

    assert answer.status_code == 200
    assert b"".join(answer.streaming_content) == DATA
    assert answer["ETag"] == f'"{sha(DATA)}"'
    assert answer["Content-Length"] == str(len(DATA))


def test_a_download_whose_object_is_gone_is_404_content_missing(s3, owner, draft):
    attachment, _ = attachment_store(owner=draft, source=DATA, filename="figures.bin")
    s3.delete_object(Bucket=s3.bucket, Key=attachment.blob.file.name)

    answer = client_for(owner).get(f"/api/v1/attachments/{attachment.pk}/content/")

    assert answer.status_code == 404
    assert answer.json()["code"] == "content_missing"


@pytest.mark.parametrize(
    "other", [b"x" * len(DATA), DATA[:-1], DATA + b"!"], ids=["same size", "shorter", "longer"]
)
def test_a_corrupted_object_is_a_502_naming_the_attachment_and_no_byte_of_it(
    s3, owner, draft, other, caplog
):
    attachment, _ = attachment_store(owner=draft, source=DATA, filename="figures.bin")
    overwrite(s3, attachment.blob.file.name, other)

    with caplog.at_level(logging.ERROR, logger="activities.storage"):
        answer = client_for(owner).get(f"/api/v1/attachments/{attachment.pk}/content/")

    assert answer.status_code == 502
    assert answer.json()["code"] == "attachment_corrupted"
    assert 'attachment "figures.bin"' in answer.json()["detail"]
    assert other[:64] not in answer.content
    assert any(attachment.blob.file.name in r.getMessage() for r in caplog.records)


def test_delivery_sends_the_bytes_of_an_s3_attachment(s3, owner, draft, smtp_settings):
    attachment_store(owner=draft, source=DATA, filename="figures.bin")
    email = email_send(email=draft, actor=owner)

    result = email_deliver(email_id=email.pk, owner="test-worker")

    assert result.outcome == "sent"
    [received] = smtp_settings.messages
    [part] = list(received.message.iter_attachments())
    assert (part.get_filename(), part.get_payload(decode=True)) == ("figures.bin", DATA)


def test_delivery_of_a_corrupted_s3_attachment_sends_nothing_and_fails_naming_it(
    s3, owner, draft, smtp_settings
):
    attachment, _ = attachment_store(owner=draft, source=DATA, filename="figures.bin")
    email = email_send(email=draft, actor=owner)
    overwrite(s3, attachment.blob.file.name, b"y" * len(DATA))

    result = email_deliver(email_id=email.pk, owner="test-worker")

    assert result.outcome == "failed"
    assert smtp_settings.messages == []
    email = Email.objects.get(pk=email.pk)
    assert email.status == EmailStatus.FAILED
    assert 'attachment "figures.bin" are corrupted' in email.last_error


@pytest.mark.django_db(transaction=True)
def test_the_same_bytes_uploaded_at_once_end_as_one_row_and_one_object(s3, owner):
    need_postgresql()
    Organization.get()
    email = EmailFactory(sender_user=owner, created_by=owner)
    threads_n = 6
    barrier = threading.Barrier(threads_n)
    answers: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def post(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            answer = upload(owner, email, DATA, f"part{i}.bin")
            answers.append((answer.status_code, answer.json()["reused"]))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(answers) == [(201, False)] + [(201, True)] * (threads_n - 1)
    blob = AttachmentBlob.objects.get()
    assert (blob.sha256, blob.size) == (sha(DATA), len(DATA))
    assert ActivityMimeAttachment.objects.filter(blob=blob).count() == threads_n
    assert keys(s3) == [blob_path(sha(DATA))]
    assert object_bytes(s3, blob.file.name) == DATA


def test_the_collector_sweeps_old_orphan_objects_and_keeps_the_rest(s3, owner, draft):
    attachment, _ = attachment_store(owner=draft, source=DATA, filename="figures.bin")
    AttachmentBlob.objects.update(touched_at=timezone.now() - timedelta(days=365))
    orphan_key = blob_path(sha(b"left by a crash"))
    overwrite(s3, orphan_key, b"left by a crash")
    overwrite(s3, "other/not-a-blob.txt", b"not ours")

    # S3 keeps the time of the write: the orphan is fresh for an hour's grace ...
    fresh = blob_collect_garbage(grace_seconds=3600)
    dry = blob_collect_garbage(grace_seconds=0, dry_run=True)
    # ... and old for none.
    swept = blob_collect_garbage(grace_seconds=0)

    assert fresh.orphan_files == 0
    assert (dry.orphan_files, dry.orphan_bytes, dry.names) == (1, 15, [orphan_key])
    assert (swept.blobs, swept.orphan_files, swept.orphan_bytes, swept.names) == (
        0,
        1,
        15,
        [orphan_key],
    )
    assert keys(s3) == sorted([attachment.blob.file.name, "other/not-a-blob.txt"])
    assert AttachmentBlob.objects.get().pk == attachment.blob_id


def test_the_collector_lists_the_bucket_page_by_page(s3, monkeypatch):
    """More orphans than a ListObjectsV2 page and a batch of the rows' query hold."""
    monkeypatch.setattr(storage_module, "S3_LIST_PAGE", 4)
    monkeypatch.setattr(blobs_module, "LISTING_BATCH", 3)
    requests: list[str] = []
    default_storage.connection.meta.client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **kwargs: requests.append("list")
    )
    names = sorted(blob_path(sha(f"orphan {i}".encode())) for i in range(10))
    for name in names:
        overwrite(s3, name, b"o")
    referenced = blob_path(sha(b"named by a row"))
    overwrite(s3, referenced, b"r")
    AttachmentBlob.objects.create(
        sha256=sha(b"named by a row"), size=1, file=referenced, touched_at=timezone.now()
    )

    dry = blob_collect_garbage(grace_seconds=0, dry_run=True)

    # The row's file counts once, as an unreferenced blob, not as an orphan.
    assert (dry.blobs, dry.orphan_files, dry.orphan_bytes) == (1, 10, 10)
    assert dry.names[0] == referenced
    assert sorted(dry.names[1:]) == names
    assert len(requests) == 3  # 11 keys, 4 a page
