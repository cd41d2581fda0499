from __future__ import annotations

import hashlib
import io
import itertools
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.utils import timezone

from activities.errors import (
    AttachmentTooLarge,
    EmptyAttachment,
    InvalidHeader,
    InvalidTransition,
    ValidationFailed,
)
from activities.models import ActivityMimeAttachment, AttachmentBlob, EmailStatus, blob_path
from activities.services.attachments import (
    attachment_delete,
    attachment_from_blob,
    attachment_store,
    attachments_copy,
    safe_filename,
)
from activities.services.blobs import CHUNK, SPOOL_IN_MEMORY, blob_collect_garbage, blob_store
from crm.models import Organization
from tests.factories import EmailFactory, TemplateFactory
from tests.services import need_postgresql

pytestmark = pytest.mark.django_db

# Draft and failed emails are editable and take attachments (API.md); no other status does.
NOT_EDITABLE_STATUSES = [s for s in EmailStatus if s not in (EmailStatus.DRAFT, EmailStatus.FAILED)]


def stored_files() -> list[str]:
    """Every file under the test's storage root, temporary ones included."""
    root = Path(settings.MEDIA_ROOT)
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def read_back(attachment: ActivityMimeAttachment) -> bytes:
    with default_storage.open(attachment.blob.file.name, "rb") as fh:
        return fh.read()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_old(blob: AttachmentBlob, *, age: timedelta = timedelta(days=2)) -> None:
    AttachmentBlob.objects.filter(pk=blob.pk).update(touched_at=timezone.now() - age)


def set_limit(limit: int) -> Organization:
    org = Organization.get()
    org.max_attachment_bytes = limit
    org.save()
    return org


# --- The blob store ---------------------------------------------------------------


def test_same_bytes_twice_share_one_blob_and_both_read_back_exactly():
    email = EmailFactory()
    template = TemplateFactory()
    data = b"quarterly report\x00\xff" * 100

    first, first_reused = attachment_store(owner=email, source=data, filename="q1.pdf")
    second, second_reused = attachment_store(owner=template, source=data, filename="copy.pdf")

    assert (first_reused, second_reused) == (False, True)
    assert AttachmentBlob.objects.count() == 1
    blob = AttachmentBlob.objects.get()
    assert first.blob_id == second.blob_id == blob.pk
    assert blob.sha256 == sha(data) and blob.size == len(data)
    first.refresh_from_db()
    second.refresh_from_db()
    assert read_back(first) == read_back(second) == data
    assert (first.email, first.template) == (email, None)
    assert (second.email, second.template) == (None, template)
    assert (first.filename, second.filename) == ("q1.pdf", "copy.pdf")
    assert first.attachment_id == second.attachment_id == blob.sha256
    assert first.size == len(data)
    assert ActivityMimeAttachment.objects.count() == 2
    assert stored_files() == [blob.file.name]


def test_blob_file_lives_at_its_content_addressed_path():
    data = b"hello blob"
    digest = sha(data)

    attachment, _ = attachment_store(owner=TemplateFactory(), source=data, filename="a.txt")

    expected = f"blobs/sha256/{digest[:2]}/{digest[2:]}"
    assert blob_path(digest) == expected
    assert attachment.blob.file.name == expected
    assert stored_files() == [expected]
    assert (Path(settings.MEDIA_ROOT) / expected).read_bytes() == data


def test_store_streams_a_file_object_and_hashes_it_like_hashlib(tmp_path):
    # Larger than the in-memory spool and than one read, so both limits are crossed.
    data = os.urandom(SPOOL_IN_MEMORY + 3 * CHUNK + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)

    with path.open("rb") as fh:
        attachment, reused = attachment_store(owner=EmailFactory(), source=fh, filename="big.bin")

    assert reused is False
    assert attachment.blob.sha256 == hashlib.sha256(data).hexdigest()
    assert attachment.blob.size == len(data)
    assert read_back(attachment) == data


def test_store_streams_an_iterator_of_chunks_and_hashes_it_like_hashlib():
    parts = [os.urandom(n) for n in (1, CHUNK, 0, 5000, CHUNK + 1)]
    data = b"".join(parts)
    consumed = []

    def chunks():
        for part in parts:
            consumed.append(len(part))
            yield part

    attachment, _ = attachment_store(owner=TemplateFactory(), source=chunks(), filename="p.bin")

    assert consumed == [len(p) for p in parts]
    assert attachment.blob.sha256 == sha(data)
    assert attachment.blob.size == len(data)
    assert read_back(attachment) == data


def test_store_takes_an_uploaded_file_and_reuses_the_blob_of_the_same_bytes():
    data = b"uploaded through a form" * 1000
    upload = SimpleUploadedFile("form.txt", data, content_type="text/plain")

    first, _ = attachment_store(owner=TemplateFactory(), source=upload, filename=upload.name)
    second, reused = attachment_store(
        owner=TemplateFactory(), source=[data[:10], data[10:]], filename="again.txt"
    )

    assert reused is True
    assert first.blob_id == second.blob_id
    assert AttachmentBlob.objects.count() == 1
    assert read_back(second) == data


@pytest.mark.parametrize("source", [b"", iter([b"", b""])], ids=["bytes", "empty chunks"])
def test_an_empty_file_is_refused_and_nothing_is_stored(source):
    with pytest.raises(EmptyAttachment, match="the file is empty"):
        attachment_store(owner=EmailFactory(), source=source, filename="empty.txt")
    assert not AttachmentBlob.objects.exists()
    assert not ActivityMimeAttachment.objects.exists()
    assert stored_files() == []


@pytest.mark.parametrize("kind", ["bytes", "file", "chunks"])
def test_upload_exactly_at_the_organisation_limit_is_accepted(kind):
    set_limit(1000)
    data = b"x" * 1000
    source = {
        "bytes": data,
        "file": io.BytesIO(data),
        "chunks": iter([data[:999], data[999:]]),
    }[kind]

    attachment, _ = attachment_store(owner=EmailFactory(), source=source, filename="limit.bin")

    assert attachment.blob.size == 1000
    assert read_back(attachment) == data


@pytest.mark.parametrize("kind", ["bytes", "file", "chunks"])
def test_upload_one_byte_over_the_limit_is_refused_and_stores_nothing(kind):
    set_limit(1000)
    email = EmailFactory()
    data = b"x" * 1001
    source = {
        "bytes": data,
        "file": io.BytesIO(data),
        "chunks": iter([data[:1000], data[1000:]]),
    }[kind]

    with pytest.raises(AttachmentTooLarge) as excinfo:
        attachment_store(owner=email, source=source, filename="big.bin")

    assert excinfo.value.code == "attachment_too_large"
    assert excinfo.value.http_status == 413
    assert "1000" in excinfo.value.message
    assert AttachmentBlob.objects.count() == 0
    assert ActivityMimeAttachment.objects.count() == 0
    assert stored_files() == []
    email.refresh_from_db()
    assert email.status == EmailStatus.DRAFT


def test_oversized_stream_is_refused_without_reading_it_to_the_end():
    set_limit(10 * CHUNK)
    endless = itertools.repeat(b"z" * CHUNK)

    with pytest.raises(AttachmentTooLarge):
        attachment_store(owner=TemplateFactory(), source=endless, filename="endless.bin")

    assert AttachmentBlob.objects.count() == 0
    assert stored_files() == []


def test_blob_store_rewrites_the_file_of_a_blob_whose_file_went_missing():
    data = b"will be lost once"
    blob, _ = blob_store(source=data, max_bytes=1000)
    default_storage.delete(blob.file.name)

    again, reused = blob_store(source=data, max_bytes=1000)

    assert reused is True and again.pk == blob.pk
    assert AttachmentBlob.objects.count() == 1
    assert default_storage.open(blob.file.name, "rb").read() == data


# --- Owners ------------------------------------------------------------------------


@pytest.mark.parametrize("status", NOT_EDITABLE_STATUSES)
def test_attachment_on_a_non_draft_email_is_refused_and_nothing_is_stored(status):
    email = EmailFactory(status=status)

    with pytest.raises(InvalidTransition) as excinfo:
        attachment_store(owner=email, source=b"late file", filename="late.txt")

    assert excinfo.value.status == status
    assert excinfo.value.http_status == 409
    assert ActivityMimeAttachment.objects.count() == 0
    assert AttachmentBlob.objects.count() == 0
    assert stored_files() == []
    email.refresh_from_db()
    assert email.status == status


def test_attachment_on_an_email_sent_since_it_was_loaded_is_refused():
    email = EmailFactory()
    type(email).objects.filter(pk=email.pk).update(status=EmailStatus.SENT)

    with pytest.raises(InvalidTransition):
        attachment_store(owner=email, source=b"stale instance", filename="x.txt")

    assert ActivityMimeAttachment.objects.count() == 0


def test_templates_take_attachments_in_upload_order():
    template = TemplateFactory()

    first, _ = attachment_store(owner=template, source=b"one", filename="one.txt")
    second, _ = attachment_store(owner=template, source=b"two", filename="two.txt")

    assert [(a.filename, a.position) for a in template.attachments.all()] == [
        ("one.txt", 0),
        ("two.txt", 1),
    ]
    assert first.email is None and second.email is None
    assert [read_back(a) for a in template.attachments.all()] == [b"one", b"two"]


def test_attachment_subject_with_a_line_break_is_refused_and_nothing_is_stored():
    with pytest.raises(InvalidHeader):
        attachment_store(
            owner=EmailFactory(), source=b"data", filename="a.txt", subject="x\r\nBcc: y@z.example"
        )

    assert ActivityMimeAttachment.objects.count() == 0
    assert AttachmentBlob.objects.count() == 0
    assert stored_files() == []


# --- File names and MIME types -----------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\system.ini", "system.ini"),
        ("/absolute/path/report.pdf", "report.pdf"),
        ("re\r\nport.pdf", "report.pdf"),
        ("inj\r\nBcc: x.txt", "injBcc: x.txt"),
        ("a\x00b\x1f\x7f.txt", "ab.txt"),
        ("\u202etxt.exe", "txt.exe"),
        ("e\u0301t\u00e9.txt", "\u00e9t\u00e9.txt"),
        ("  spaced name.txt  ", "spaced name.txt"),
        ("", "attachment"),
        ("   ", "attachment"),
        ("..", "attachment"),
        ("folder/", "attachment"),
        ("\r\n", "attachment"),
    ],
)
def test_safe_filename_strips_directories_and_control_characters(given, expected):
    assert safe_filename(given) == expected


def test_safe_filename_cuts_long_names_to_255_keeping_the_extension():
    long_with_ext = safe_filename("a" * 300 + ".pdf")
    long_without_ext = safe_filename("b" * 300)

    assert len(long_with_ext) == 255 and long_with_ext == "a" * 251 + ".pdf"
    assert long_without_ext == "b" * 255
    assert safe_filename("c" * 255) == "c" * 255


def test_stored_attachment_keeps_the_safe_filename():
    attachment, _ = attachment_store(
        owner=EmailFactory(), source=b"root:x:0:0", filename="../../etc/pass\r\nwd"
    )

    attachment.refresh_from_db()
    assert attachment.filename == "passwd"
    assert stored_files() == [attachment.blob.file.name]


@pytest.mark.parametrize(
    "bad", ["text/html\r\nX: y", "nonsense", "text/", "/plain", "text/ plain", "te xt/plain"]
)
def test_store_refuses_an_invalid_mime_type_and_stores_nothing(bad):
    with pytest.raises(ValidationFailed) as excinfo:
        attachment_store(owner=EmailFactory(), source=b"data", filename="a.txt", mime_type=bad)

    assert excinfo.value.code == "invalid_mime_type"
    assert ActivityMimeAttachment.objects.count() == 0
    assert AttachmentBlob.objects.count() == 0
    assert stored_files() == []


@pytest.mark.parametrize(
    ("filename", "given", "expected"),
    [
        ("report.pdf", None, "application/pdf"),
        ("notes.txt", None, "text/plain"),
        ("photo.PNG", "", "image/png"),
        ("no-extension", None, "application/octet-stream"),
        ("notes.txt", "Text/Plain; charset=utf-8", "text/plain"),
        ("data.bin", "application/vnd.ms-excel", "application/vnd.ms-excel"),
    ],
)
def test_mime_type_is_normalised_or_guessed_from_the_filename(filename, given, expected):
    attachment, _ = attachment_store(
        owner=TemplateFactory(), source=b"data", filename=filename, mime_type=given
    )

    attachment.refresh_from_db()
    assert attachment.mime_type == expected


# --- Attaching stored bytes by id, copying, deleting --------------------------------


def test_attachment_from_blob_reuses_the_stored_bytes_by_sha256():
    data = b"already uploaded"
    original, _ = attachment_store(owner=TemplateFactory(), source=data, filename="orig.txt")
    email = EmailFactory()
    files_before = stored_files()

    attachment = attachment_from_blob(
        owner=email, sha256=sha(data).upper(), filename="../renamed.txt"
    )

    attachment.refresh_from_db()
    assert attachment.blob_id == original.blob_id
    assert (attachment.email, attachment.template) == (email, None)
    assert attachment.filename == "renamed.txt"
    assert attachment.mime_type == "text/plain"
    assert read_back(attachment) == data
    assert AttachmentBlob.objects.count() == 1
    assert stored_files() == files_before


@pytest.mark.parametrize("unknown", ["0" * 64, "", "not-a-hash"])
def test_attachment_from_an_unknown_sha256_is_refused(unknown):
    attachment_store(owner=TemplateFactory(), source=b"something else", filename="x.txt")
    email = EmailFactory()

    with pytest.raises(ValidationFailed) as excinfo:
        attachment_from_blob(owner=email, sha256=unknown, filename="x.txt")

    assert excinfo.value.code == "unknown_attachment_id"
    assert email.attachments.count() == 0
    assert AttachmentBlob.objects.count() == 1


def test_attachment_from_blob_on_a_sent_email_is_refused():
    data = b"stored"
    attachment_store(owner=TemplateFactory(), source=data, filename="x.txt")
    email = EmailFactory(status=EmailStatus.SENT)

    with pytest.raises(InvalidTransition):
        attachment_from_blob(owner=email, sha256=sha(data), filename="x.txt")

    assert email.attachments.count() == 0


def test_attachments_copy_gives_an_email_the_template_files_on_the_same_blobs():
    template = TemplateFactory()
    attachment_store(owner=template, source=b"price list", filename="prices.pdf")
    attachment_store(
        owner=template, source=b"terms", filename="terms.txt", mime_type="text/plain", subject="T"
    )
    email = EmailFactory()
    files_before = stored_files()

    copies = attachments_copy(source=template, target=email)

    assert len(copies) == 2
    assert AttachmentBlob.objects.count() == 2
    assert stored_files() == files_before
    assert [
        (a.filename, a.mime_type, a.subject, a.position, a.blob_id) for a in email.attachments.all()
    ] == [
        (a.filename, a.mime_type, a.subject, a.position, a.blob_id)
        for a in template.attachments.all()
    ]
    assert [read_back(a) for a in email.attachments.all()] == [b"price list", b"terms"]
    assert template.attachments.count() == 2


@pytest.mark.parametrize("status", [EmailStatus.SENT, EmailStatus.PENDING_SEND])
def test_attachments_copy_to_a_non_draft_email_is_refused(status):
    template = TemplateFactory()
    attachment_store(owner=template, source=b"price list", filename="prices.pdf")
    email = EmailFactory(status=status)

    with pytest.raises(InvalidTransition):
        attachments_copy(source=template, target=email)

    assert email.attachments.count() == 0


def test_attachment_delete_removes_the_link_and_keeps_the_blob_for_the_collector():
    email = EmailFactory()
    attachment, _ = attachment_store(owner=email, source=b"oops", filename="wrong.txt")

    attachment_delete(attachment=attachment)

    assert email.attachments.count() == 0
    assert AttachmentBlob.objects.count() == 1
    assert stored_files() == [blob_path(sha(b"oops"))]


def test_attachment_delete_on_a_sent_email_is_refused():
    email = EmailFactory()
    attachment, _ = attachment_store(owner=email, source=b"sent file", filename="f.txt")
    type(email).objects.filter(pk=email.pk).update(status=EmailStatus.SENT)
    attachment.refresh_from_db()

    with pytest.raises(InvalidTransition):
        attachment_delete(attachment=attachment)

    assert email.attachments.count() == 1


# --- Garbage collection ------------------------------------------------------------


def test_gc_removes_an_unreferenced_blob_older_than_the_grace_period(
    django_capture_on_commit_callbacks,
):
    blob, _ = blob_store(source=b"orphan", max_bytes=1000)
    make_old(blob)

    with django_capture_on_commit_callbacks(execute=True):
        removed = blob_collect_garbage(grace_seconds=3600).blobs

    assert removed == 1
    assert not AttachmentBlob.objects.filter(pk=blob.pk).exists()
    assert stored_files() == []


def test_gc_uses_the_grace_period_from_settings(settings, django_capture_on_commit_callbacks):
    settings.CRM_BLOB_GC_GRACE_SECONDS = 3600
    stale, _ = blob_store(source=b"two hours", max_bytes=1000)
    fresh, _ = blob_store(source=b"ten minutes", max_bytes=1000)
    make_old(stale, age=timedelta(hours=2))
    make_old(fresh, age=timedelta(minutes=10))

    with django_capture_on_commit_callbacks(execute=True):
        removed = blob_collect_garbage().blobs

    assert removed == 1
    assert list(AttachmentBlob.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert stored_files() == [fresh.file.name]


def test_gc_keeps_a_referenced_blob_however_old(django_capture_on_commit_callbacks):
    email = EmailFactory()
    attachment, _ = attachment_store(owner=email, source=b"in use", filename="a.txt")
    make_old(attachment.blob, age=timedelta(days=365))

    with django_capture_on_commit_callbacks(execute=True):
        removed = blob_collect_garbage(grace_seconds=3600).blobs

    assert removed == 0
    assert AttachmentBlob.objects.count() == 1
    assert read_back(attachment) == b"in use"


def test_gc_keeps_an_unreferenced_blob_touched_within_the_grace_period(
    django_capture_on_commit_callbacks,
):
    attachment, _ = attachment_store(owner=EmailFactory(), source=b"just removed", filename="a")
    attachment_delete(attachment=attachment)

    with django_capture_on_commit_callbacks(execute=True):
        removed = blob_collect_garbage(grace_seconds=3600).blobs

    assert removed == 0
    assert AttachmentBlob.objects.count() == 1
    assert stored_files() == [blob_path(sha(b"just removed"))]


def test_gc_removes_at_most_limit_blobs_per_run(django_capture_on_commit_callbacks):
    for i in range(3):
        blob, _ = blob_store(source=f"orphan {i}".encode(), max_bytes=1000)
        make_old(blob)

    with django_capture_on_commit_callbacks(execute=True):
        first = blob_collect_garbage(grace_seconds=3600, limit=2).blobs
        second = blob_collect_garbage(grace_seconds=3600, limit=2).blobs

    assert (first, second) == (2, 1)
    assert AttachmentBlob.objects.count() == 0
    assert stored_files() == []


def test_reusing_an_old_unreferenced_blob_protects_it_from_the_collector(
    django_capture_on_commit_callbacks,
):
    data = b"uploaded again a week later"
    blob, _ = blob_store(source=data, max_bytes=1000)
    make_old(blob, age=timedelta(days=7))

    # The upload has found the blob but not yet linked it when the collector runs.
    again, reused = blob_store(source=data, max_bytes=1000)
    with django_capture_on_commit_callbacks(execute=True):
        removed = blob_collect_garbage(grace_seconds=3600).blobs
    attachment, _ = attachment_store(owner=EmailFactory(), source=data, filename="a.txt")

    assert reused is True and again.pk == blob.pk
    assert removed == 0
    assert attachment.blob_id == blob.pk
    assert read_back(attachment) == data


def test_bytes_uploaded_again_after_collection_are_stored_afresh(
    django_capture_on_commit_callbacks,
):
    data = b"collected, then wanted again"
    blob, _ = blob_store(source=data, max_bytes=1000)
    make_old(blob)
    with django_capture_on_commit_callbacks(execute=True):
        assert blob_collect_garbage(grace_seconds=3600).blobs == 1

    attachment, reused = attachment_store(owner=EmailFactory(), source=data, filename="a.txt")

    assert reused is False
    assert attachment.blob_id != blob.pk
    assert read_back(attachment) == data
    assert stored_files() == [blob_path(sha(data))]


def test_upload_between_the_collectors_commit_and_its_file_cleanup_keeps_its_file(
    django_capture_on_commit_callbacks,
):
    data = b"racing the collector"
    blob, _ = blob_store(source=data, max_bytes=1000)
    make_old(blob)
    template = TemplateFactory()

    # Whatever the collector leaves for after its commit runs only once this upload,
    # which no longer sees the row, is done.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert blob_collect_garbage(grace_seconds=3600).blobs == 1
        attachment, _ = attachment_store(owner=template, source=data, filename="again.txt")
    for callback in callbacks:
        callback()

    assert read_back(attachment) == data
    assert stored_files() == [blob_path(sha(data))]


# --- Concurrency (PostgreSQL) -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_simultaneous_uploads_of_the_same_bytes_end_with_one_blob():
    need_postgresql()
    Organization.get()
    email = EmailFactory()
    data = os.urandom(3 * CHUNK + 123)
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def upload(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            attachment, reused = attachment_store(
                owner=email, source=io.BytesIO(data), filename=f"part{i}.bin"
            )
            results.append((attachment.pk, reused))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert len(results) == threads_n
    assert AttachmentBlob.objects.count() == 1
    blob = AttachmentBlob.objects.get()
    assert blob.sha256 == sha(data) and blob.size == len(data)
    assert sorted(reused for _, reused in results) == [False] + [True] * (threads_n - 1)
    attachments = list(email.attachments.all())
    assert len(attachments) == threads_n
    assert {a.blob_id for a in attachments} == {blob.pk}
    # The email row is locked while each attachment takes its place.
    assert sorted(a.position for a in attachments) == list(range(threads_n))
    assert all(read_back(a) == data for a in attachments)
    assert stored_files() == [blob_path(blob.sha256)]


@pytest.mark.django_db(transaction=True)
def test_gc_leaves_a_blob_that_an_upload_is_linking_at_that_moment():
    need_postgresql()
    data = b"linked while the collector runs"
    blob, _ = blob_store(source=data, max_bytes=1000)
    make_old(blob)
    template = TemplateFactory()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        collector_pid = cursor.fetchone()[0]
    linked = threading.Event()
    errors: list[BaseException] = []

    def link_in_flight() -> None:
        # What _link does, held open until the collector waits for the blob's row.
        try:
            with transaction.atomic():
                AttachmentBlob.objects.filter(pk=blob.pk).update(touched_at=timezone.now())
                ActivityMimeAttachment.objects.create(
                    template=template, blob_id=blob.pk, filename="late.txt"
                )
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    own_pid = cursor.fetchone()[0]
                    linked.set()
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        cursor.execute("SELECT pg_blocking_pids(%s)", [collector_pid])
                        if own_pid in cursor.fetchone()[0]:
                            break
                        time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=link_in_flight)
    thread.start()
    assert linked.wait(timeout=10)
    removed = blob_collect_garbage(grace_seconds=3600).blobs
    thread.join(timeout=30)

    assert errors == []
    assert removed == 0
    assert AttachmentBlob.objects.filter(pk=blob.pk).exists()
    attachment = ActivityMimeAttachment.objects.get()
    assert read_back(attachment) == data


def test_a_failed_email_takes_attachments_like_a_draft(owner):
    """API.md: draft and failed emails (both editable) take attachments (issue 11)."""
    email = EmailFactory(sender_user=owner, status=EmailStatus.FAILED)
    attachment, _ = attachment_store(owner=email, source=b"the fixed file", filename="fix.txt")
    assert read_back(attachment) == b"the fixed file"
    attachment_delete(attachment=attachment, actor=owner)
    assert not ActivityMimeAttachment.objects.filter(email=email).exists()
