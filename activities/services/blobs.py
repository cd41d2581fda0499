"""The content-addressed blob store: bytes kept once, keyed by SHA-256.

``blob_store`` writes them, ``blob_open_verified`` reads them back checked against
their size and SHA-256 (``storage.read_verified``), ``blob_collect_garbage`` removes
unreferenced blobs and orphan files.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import conf
from ..errors import AttachmentTooLarge, EmptyAttachment
from ..models import ActivityMimeAttachment, AttachmentBlob, InboundMessage, blob_path
from ..storage import StoredFile, read_verified, stored_files

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
SPOOL_IN_MEMORY = 1024 * 1024


def _chunks(source: IO[bytes] | Iterable[bytes] | bytes) -> Iterable[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield bytes(source)
    elif hasattr(source, "chunks"):
        yield from source.chunks(CHUNK)
    elif hasattr(source, "read"):
        while chunk := source.read(CHUNK):
            yield chunk
    else:
        yield from source


def blob_store(
    *, source: IO[bytes] | Iterable[bytes] | bytes, max_bytes: int
) -> tuple[AttachmentBlob, bool]:
    """Store bytes once; return ``(blob, reused)``.

    The bytes are hashed as they stream into a spooled temporary file, so no whole
    file sits in memory; going past ``max_bytes`` stops the read and stores nothing.
    Two simultaneous stores of the same bytes end with one row: the unique SHA-256
    decides, not a read-then-write.
    """
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        for chunk in _chunks(source):
            size += len(chunk)
            if size > max_bytes:
                raise AttachmentTooLarge(f"the file is larger than the limit of {max_bytes} bytes")
            digest.update(chunk)
            spool.write(chunk)
        if size == 0:
            raise EmptyAttachment("the file is empty (0 bytes): there is nothing to attach")
        sha256 = digest.hexdigest()
        name = blob_path(sha256)
        existing = AttachmentBlob.objects.filter(sha256=sha256).first()
        # Touch before relying on a blob, so that the garbage collector leaves it alone
        # until this upload links it; a blob the collector took meanwhile (the touch
        # finds no row) is stored afresh below.
        if existing is not None and blob_touch(blob=existing):
            if not (existing.file.name and default_storage.exists(existing.file.name)):
                _write(spool, name)  # its file was missing: written again
            return existing, True
        return _store_new(spool, sha256=sha256, size=size, name=name)


def _write(spool: IO[bytes], name: str) -> None:
    spool.seek(0)
    saved = default_storage.save(name, File(spool, name=name))
    if saved != name:  # a storage that renames on collision: keep the canonical copy
        default_storage.delete(saved)


def _store_new(
    spool: IO[bytes], *, sha256: str, size: int, name: str
) -> tuple[AttachmentBlob, bool]:
    """Write the bytes of a blob that has no row, then insert its row.

    The file is written even when one is there already: that is an orphan (a crash
    between a write and an insert), perhaps old enough for the collector, and writing
    it gives it a fresh modification time. The collector removes an old orphan only
    through a row of its own (``_collect_orphan_file``), so this insert either meets
    that row (and touches it, or finds it gone and tries again) or comes after the
    collector's commit, when the file is checked for, and written again if it went.
    """
    for _attempt in range(3):
        _write(spool, name)
        try:
            with transaction.atomic():
                blob = AttachmentBlob.objects.create(
                    sha256=sha256, size=size, file=name, touched_at=timezone.now()
                )
            reused = False
        except IntegrityError:
            found = AttachmentBlob.objects.filter(sha256=sha256).first()
            if found is None or not blob_touch(blob=found):
                continue  # the collector took it in between: write and insert again
            if found.size != size:  # a row the collector made for an orphan file
                AttachmentBlob.objects.filter(pk=found.pk).update(size=size)
                found.size = size
            blob, reused = found, True
        if not default_storage.exists(name):
            _write(spool, name)
        return blob, reused
    raise RuntimeError(f"could not store blob {sha256}: its row kept vanishing")


def blob_open_verified(*, blob: AttachmentBlob, label: str) -> IO[bytes]:
    """A blob's bytes, read whole and checked against its size and SHA-256, rewound.

    Spooled while they are hashed (in memory up to 1 MB, then on disk; never more than
    the blob's size, itself within the attachment limit), so a caller that streams
    them on has the verdict before its first byte goes out. Raises
    ``AttachmentCorrupted`` (``label`` names the attachment) or ``FileNotFoundError``.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    try:
        for chunk in read_verified(
            default_storage, blob.file.name, size=blob.size, sha256=blob.sha256, label=label
        ):
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def blob_touch(*, blob: AttachmentBlob) -> bool:
    """Mark a blob as in use now; ``False`` if it no longer exists (collected)."""
    return AttachmentBlob.objects.filter(pk=blob.pk).update(touched_at=timezone.now()) == 1


BLOB_PREFIX = "blobs/sha256/"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Files listed per query for the rows that name them.
LISTING_BATCH = 500


@dataclass
class BlobGarbage:
    """What a collection removed, or with ``dry_run`` would remove: blobs (a row and its
    file) and orphan files (under ``blobs/sha256/`` with no row), counted and summed."""

    dry_run: bool = False
    blobs: int = 0
    blob_bytes: int = 0
    orphan_files: int = 0
    orphan_bytes: int = 0
    names: list[str] = field(default_factory=list)  # the storage names, blobs' first

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "dry_run": self.dry_run,
            "blobs": self.blobs,
            "blob_bytes": self.blob_bytes,
            "orphan_files": self.orphan_files,
            "orphan_bytes": self.orphan_bytes,
        }

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"{verb} {self.blobs} unreferenced blobs ({self.blob_bytes} bytes) and "
            f"{self.orphan_files} orphan files ({self.orphan_bytes} bytes)"
        )


def blob_collect_garbage(
    *, grace_seconds: int | None = None, limit: int = 1000, dry_run: bool = False
) -> BlobGarbage:
    """Remove blobs that no attachment or kept inbound message references and nobody touched for a grace period,
    then files under ``blobs/sha256/`` that no row names and that are older than it.

    Storing or reusing a blob touches it first, so an upload in flight keeps its blob.
    Each blob is deleted under a row lock taken with the conditions re-checked: a
    concurrent touch either comes first (the blob stays) or waits for the delete (and
    the upload stores the bytes again). The file goes before the row commits, so an
    upload that sees the row gone never finds a file about to vanish.

    An orphan file (a crash between writing a file and inserting its row) goes only
    when its storage modification time is older than the grace period, so a file that
    an upload has just written is left alone; and it goes through a row inserted for
    it and removed like any blob, so an upload adopting an old file meanwhile either
    conflicts with that row (and keeps it) or finds the file gone and writes it again.
    At most ``limit`` blobs and ``limit`` files per run. ``dry_run`` removes nothing
    and reports what would go.
    """
    grace = conf.blob_gc_grace_seconds() if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    report = BlobGarbage(dry_run=dry_run)
    candidates = list(
        AttachmentBlob.objects.filter(
            touched_at__lt=cutoff, attachments__isnull=True, inbound_messages__isnull=True
        ).values_list("pk", "file", "size")[:limit]
    )
    for pk, name, size in candidates:
        if dry_run or _collect_blob(pk, name, cutoff):
            report.blobs += 1
            report.blob_bytes += size
            report.names.append(name)
    for stored in _orphan_files(cutoff, limit):
        if dry_run or _collect_orphan_file(stored, cutoff):
            report.orphan_files += 1
            report.orphan_bytes += stored.size
            report.names.append(stored.name)
    if (report.blobs or report.orphan_files) and not dry_run:
        logger.info("blob collection: %s", report.summary())
    return report


def _collect_blob(pk: int, name: str, cutoff: datetime) -> bool:
    with transaction.atomic():
        locked = (
            AttachmentBlob.objects.select_for_update().filter(pk=pk, touched_at__lt=cutoff).exists()
        )
        if (
            not locked
            or ActivityMimeAttachment.objects.filter(blob_id=pk).exists()
            or InboundMessage.objects.filter(blob_id=pk).exists()
        ):
            return False
        AttachmentBlob.objects.filter(pk=pk).delete()
        # Inside the transaction: should the commit fail, the row outlives its file,
        # which the next store of these bytes writes again.
        default_storage.delete(name)
    return True


def _orphan_files(cutoff: datetime, limit: int) -> Iterator[StoredFile]:
    """Files under the blob prefix, older than ``cutoff``, that no row names; at most
    ``limit``, found one listing page at a time."""
    found = 0
    listing = stored_files(default_storage, BLOB_PREFIX)
    while found < limit:
        batch = list(itertools.islice(listing, LISTING_BATCH))
        if not batch:
            return
        named = set(
            AttachmentBlob.objects.filter(file__in=[f.name for f in batch]).values_list(
                "file", flat=True
            )
        )
        for stored in batch:
            if stored.name not in named and stored.modified < cutoff:
                yield stored
                found += 1
                if found >= limit:
                    return


def _collect_orphan_file(stored: StoredFile, cutoff: datetime) -> bool:
    folder, _, rest = stored.name[len(BLOB_PREFIX) :].partition("/")
    sha256 = folder + rest
    if not (_SHA256.fullmatch(sha256) and blob_path(sha256) == stored.name):
        # Not a blob's name (a temporary file a crashed write left): nothing will
        # ever refer to it.
        default_storage.delete(stored.name)
        return True
    try:
        with transaction.atomic():
            row = AttachmentBlob.objects.create(
                sha256=sha256, size=stored.size, file=stored.name, touched_at=stored.modified
            )
    except IntegrityError:
        return False  # an upload has just inserted its row: the file is its own now
    # False: an upload touched the row in between, and the blob is its own now.
    return _collect_blob(row.pk, stored.name, cutoff)
