"""The content-addressed blob store: bytes kept once, keyed by SHA-256."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterable
from datetime import timedelta
from typing import IO

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import conf
from ..errors import AttachmentTooLarge, EmptyAttachment
from ..models import ActivityMimeAttachment, AttachmentBlob, blob_path
from ..storage import read_verified

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
        if existing is not None and not blob_touch(blob=existing):
            existing = None
        if (
            existing is not None
            and existing.file.name
            and default_storage.exists(existing.file.name)
        ):
            return existing, True
        if not default_storage.exists(name):
            spool.seek(0)
            saved = default_storage.save(name, File(spool, name=name))
            if saved != name:  # a storage that renames on collision: keep the canonical copy
                default_storage.delete(saved)
    if existing is not None:
        return existing, True  # its file was missing and has been written again
    now = timezone.now()
    try:
        with transaction.atomic():
            blob = AttachmentBlob.objects.create(
                sha256=sha256, size=size, file=name, touched_at=now
            )
        return blob, False
    except IntegrityError:
        blob = AttachmentBlob.objects.get(sha256=sha256)
        blob_touch(blob=blob)
        return blob, True


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


def blob_collect_garbage(*, grace_seconds: int | None = None, limit: int = 1000) -> int:
    """Delete blobs that no attachment references and nobody touched for a grace period.

    Storing or reusing a blob touches it first, so an upload in flight keeps its blob.
    Each blob is deleted under a row lock taken with the conditions re-checked: a
    concurrent touch either comes first (the blob stays) or waits for the delete (and
    the upload stores the bytes again). The file goes before the row commits, so an
    upload that sees the row gone never finds a file about to vanish.
    """
    grace = conf.blob_gc_grace_seconds() if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    candidates = list(
        AttachmentBlob.objects.filter(touched_at__lt=cutoff, attachments__isnull=True).values_list(
            "pk", "file"
        )[:limit]
    )
    removed = 0
    for pk, name in candidates:
        with transaction.atomic():
            locked = (
                AttachmentBlob.objects.select_for_update()
                .filter(pk=pk, touched_at__lt=cutoff)
                .exists()
            )
            if not locked or ActivityMimeAttachment.objects.filter(blob_id=pk).exists():
                continue
            AttachmentBlob.objects.filter(pk=pk).delete()
            # Inside the transaction: should the commit fail, the row outlives its file,
            # which the next store of these bytes writes again.
            default_storage.delete(name)
            removed += 1
    if removed:
        logger.info("removed %s unreferenced blobs", removed)
    return removed
