"""The blob collector's sweep of orphan files (a file under ``blobs/sha256/`` with no
row, left by a crash between writing it and inserting the row), its dry run, and
``manage.py collect_blobs``. The collection of unreferenced rows is in
``test_attachments.py``; the S3 variant of the sweep in ``test_blob_storage_s3.py``."""

from __future__ import annotations

import hashlib
import io
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from activities.models import AttachmentBlob, blob_path
from activities.services import blobs as blobs_module
from activities.services.attachments import attachment_store
from activities.services.blobs import BlobGarbage, blob_collect_garbage, blob_store
from activities.tasks import collect_orphan_blobs
from tests.factories import EmailFactory

pytestmark = pytest.mark.django_db

DAY = 24 * 3600


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def media() -> Path:
    return Path(settings.MEDIA_ROOT)


def stored_files() -> list[str]:
    root = media()
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def age_file(name: str, seconds: float) -> None:
    path = media() / name
    then = time.time() - seconds
    os.utime(path, (then, then))


def orphan(data: bytes, *, age: float = 2 * DAY) -> str:
    """A blob's file with no row, as a crash after the write leaves it."""
    name = blob_path(sha(data))
    path = media() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    age_file(name, age)
    return name


def old_unreferenced_blob(data: bytes) -> AttachmentBlob:
    blob, _ = blob_store(source=data, max_bytes=10_000)
    AttachmentBlob.objects.filter(pk=blob.pk).update(touched_at=timezone.now() - timedelta(days=2))
    age_file(blob.file.name, 2 * DAY)
    return blob


def test_an_orphan_file_older_than_the_grace_period_is_removed():
    name = orphan(b"left by a crash")

    report = blob_collect_garbage(grace_seconds=DAY)

    assert (report.orphan_files, report.orphan_bytes) == (1, len(b"left by a crash"))
    assert (report.blobs, report.blob_bytes) == (0, 0)
    assert report.names == [name]
    assert stored_files() == []
    # The row it went through is gone with it.
    assert AttachmentBlob.objects.count() == 0


def test_an_orphan_file_within_the_grace_period_is_kept():
    name = orphan(b"an upload about to insert its row", age=60)

    report = blob_collect_garbage(grace_seconds=3600)

    assert report.orphan_files == 0
    assert stored_files() == [name]


def test_a_stray_temporary_file_under_the_prefix_goes_and_files_elsewhere_stay():
    stray = "blobs/sha256/ab/.tmp-k2j3h4"
    (media() / "blobs/sha256/ab").mkdir(parents=True)
    (media() / stray).write_bytes(b"half a write")
    age_file(stray, 2 * DAY)
    (media() / "other").mkdir()
    (media() / "other/keep.txt").write_bytes(b"not ours")
    age_file("other/keep.txt", 2 * DAY)

    report = blob_collect_garbage(grace_seconds=DAY)

    assert report.names == [stray]
    assert stored_files() == ["other/keep.txt"]


def test_a_referenced_blob_is_never_removed_however_old_its_row_and_file():
    attachment, _ = attachment_store(owner=EmailFactory(), source=b"in use", filename="a.txt")
    AttachmentBlob.objects.update(touched_at=timezone.now() - timedelta(days=365))
    age_file(attachment.blob.file.name, 365 * DAY)

    report = blob_collect_garbage(grace_seconds=0)

    assert report == BlobGarbage()
    assert stored_files() == [attachment.blob.file.name]
    assert AttachmentBlob.objects.get().pk == attachment.blob_id


def test_an_upload_of_the_bytes_of_an_old_orphan_adopts_it_and_writes_it_afresh():
    data = b"uploaded again after the crash"
    name = orphan(data, age=7 * DAY)

    attachment, reused = attachment_store(owner=EmailFactory(), source=data, filename="a.txt")
    # Written again, not just found: a collector that listed it as old sees it new.
    assert time.time() - (media() / name).stat().st_mtime < 3600
    attachment.delete()  # unreferenced again, but touched and written just now
    report = blob_collect_garbage(grace_seconds=DAY)

    assert reused is False
    assert report.orphan_files == report.blobs == 0
    assert stored_files() == [name]
    assert (media() / name).read_bytes() == data


def test_a_collection_between_an_uploads_write_and_its_insert_leaves_it_a_file(monkeypatch):
    """The worst moment: the upload has written the file (of an old orphan's bytes) and
    not yet inserted its row when the collector, which listed the file as old, takes it
    through a row of its own. The upload's insert then succeeds, finds the file gone,
    and writes it again."""
    data = b"written, collected, inserted"
    name = orphan(data, age=7 * DAY)
    real_write = blobs_module._write
    collected: list[BlobGarbage] = []

    def write_then_collect(spool, written):
        real_write(spool, written)
        if not collected:
            age_file(written, 7 * DAY)  # as the collector's listing saw it
            collected.append(blob_collect_garbage(grace_seconds=DAY))

    monkeypatch.setattr(blobs_module, "_write", write_then_collect)

    blob, reused = blob_store(source=data, max_bytes=1000)

    assert collected[0].orphan_files == 1  # the collector did remove the file ...
    assert reused is False
    assert AttachmentBlob.objects.get().pk == blob.pk
    assert (media() / name).read_bytes() == data  # ... and the upload wrote it again


def test_a_dry_run_removes_nothing_and_reports_exactly_what_a_run_removes():
    blob = old_unreferenced_blob(b"an old unreferenced blob")
    old_orphan = orphan(b"an old orphan file")
    orphan(b"a fresh orphan file", age=10)
    attachment_store(owner=EmailFactory(), source=b"referenced", filename="r.txt")
    before = stored_files()
    rows_before = AttachmentBlob.objects.count()

    dry = blob_collect_garbage(grace_seconds=DAY, dry_run=True)

    assert dry == BlobGarbage(
        dry_run=True,
        blobs=1,
        blob_bytes=len(b"an old unreferenced blob"),
        orphan_files=1,
        orphan_bytes=len(b"an old orphan file"),
        names=[blob.file.name, old_orphan],
    )
    assert stored_files() == before
    assert AttachmentBlob.objects.count() == rows_before

    real = blob_collect_garbage(grace_seconds=DAY)

    assert (real.blobs, real.blob_bytes, real.orphan_files, real.orphan_bytes, real.names) == (
        dry.blobs,
        dry.blob_bytes,
        dry.orphan_files,
        dry.orphan_bytes,
        dry.names,
    )
    assert sorted(set(before) - set(stored_files())) == sorted(dry.names)


def test_at_most_limit_orphan_files_per_run():
    for i in range(3):
        orphan(f"orphan {i}".encode())

    first = blob_collect_garbage(grace_seconds=DAY, limit=2)
    second = blob_collect_garbage(grace_seconds=DAY, limit=2)

    assert (first.orphan_files, second.orphan_files) == (2, 1)
    assert stored_files() == []


def test_the_beat_task_runs_the_full_collection():
    old_unreferenced_blob(b"a blob for the task")
    orphan(b"a file for the task")

    result = collect_orphan_blobs()

    assert result == {
        "dry_run": False,
        "blobs": 1,
        "blob_bytes": len(b"a blob for the task"),
        "orphan_files": 1,
        "orphan_bytes": len(b"a file for the task"),
    }
    assert stored_files() == []


# --- manage.py collect_blobs ----------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("collect_blobs", *args, stdout=out)
    return out.getvalue()


def test_the_command_dry_run_prints_the_report_and_removes_nothing():
    blob = old_unreferenced_blob(b"12345")
    name = orphan(b"1234567")

    output = run("--dry-run", "--grace-seconds", str(DAY), "-v", "2")

    assert output.splitlines() == [
        blob.file.name,
        name,
        "would remove 1 unreferenced blobs (5 bytes) and 1 orphan files (7 bytes)",
    ]
    assert stored_files() == sorted([blob.file.name, name])


def test_the_command_collects_with_the_grace_period_given():
    orphan(b"two hours old", age=7200)

    kept = run("--grace-seconds", "10800")
    removed = run("--grace-seconds", "3600")

    assert kept == "removed 0 unreferenced blobs (0 bytes) and 0 orphan files (0 bytes)\n"
    assert removed == "removed 0 unreferenced blobs (0 bytes) and 1 orphan files (13 bytes)\n"
    assert stored_files() == []


def test_the_command_uses_the_grace_period_from_settings(settings):
    settings.CRM_BLOB_GC_GRACE_SECONDS = 3600
    orphan(b"two hours old", age=7200)
    orphan(b"ten minutes old", age=600)

    output = run()

    assert output == "removed 0 unreferenced blobs (0 bytes) and 1 orphan files (13 bytes)\n"
    assert stored_files() == [blob_path(sha(b"ten minutes old"))]


@pytest.mark.parametrize(
    "args", [["--grace-seconds", "-1"], ["--grace-seconds", "soon"], ["--limit", "0"]]
)
def test_the_command_refuses_a_bad_number(args):
    name = orphan(b"kept")

    with pytest.raises(CommandError):
        run(*args)

    assert stored_files() == [name]
