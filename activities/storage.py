"""Storage helpers for content-addressed blobs: atomic writes, verified reads, listings.

``BlobFileSystemStorage`` is the file-system backend; ``read_verified`` is the one way
stored bytes are read back (downloads and outgoing mail), checked against the size and
SHA-256 they were stored under; ``stored_files`` walks what a storage holds under a
prefix, page by page, for the garbage collector.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.files.storage import FileSystemStorage, Storage

from .errors import AttachmentCorrupted

logger = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
# Keys per ListObjectsV2 request (S3's own maximum).
S3_LIST_PAGE = 1000


class BlobFileSystemStorage(FileSystemStorage):
    """``FileSystemStorage`` whose writes are atomic and whose blob names are final.

    A blob's name is its content's hash, so two writers of one name write the same
    bytes: the second replaces the first (``os.replace``) instead of getting a
    suffixed copy, and a reader never sees a half-written file.
    """

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        if name.startswith("blobs/"):
            return name
        return super().get_available_name(name, max_length=max_length)

    def _save(self, name: str, content) -> str:
        if not name.startswith("blobs/"):
            return super()._save(name, content)  # type: ignore[misc]  # the stub lacks Storage._save
        full_path = self.path(name)
        directory = os.path.dirname(full_path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                if hasattr(content, "chunks"):
                    for chunk in content.chunks():
                        out.write(chunk)
                else:
                    out.write(content.read())
            if self.file_permissions_mode is not None:
                os.chmod(tmp_path, self.file_permissions_mode)
            os.replace(tmp_path, full_path)
        except BaseException:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)
            raise
        return name


# --- Reading back, verified ----------------------------------------------------------


def _corrupted(name: str, label: str, *, size: int, sha256: str, read: str) -> AttachmentCorrupted:
    logger.error(
        "blob %s is corrupted in storage: stored as %s bytes with SHA-256 %s, read %s",
        name,
        size,
        sha256,
        read,
    )
    return AttachmentCorrupted(
        f'the stored bytes of attachment "{label}" are corrupted: they no longer match the '
        f"size and SHA-256 it was stored with ({size} bytes, {sha256[:12]}…); "
        "attach the file again"
    )


def read_verified(
    storage: Storage,
    name: str,
    *,
    size: int,
    sha256: str,
    label: str,
    chunk_size: int = READ_CHUNK,
) -> Iterator[bytes]:
    """The stored bytes of ``name`` in chunks, checked against ``size`` and ``sha256``.

    Raises ``AttachmentCorrupted`` (after logging it) once the bytes read are more than
    ``size`` (so a wrong object is never read to its end) or, after the last chunk,
    when their count or SHA-256 differ: a caller uses nothing it was given until the
    iteration has ended without error. ``label`` (the attachment's file name) goes
    into the message. A missing file raises ``FileNotFoundError``, as ``open`` does.
    On S3 the object's length is known from the ``HEAD`` that opening it makes, so an
    object of another size is refused before its bytes are fetched, and the bytes
    are streamed from the response rather than copied to a local file first.
    """
    digest = hashlib.sha256()
    read = 0
    with ExitStack() as stack:
        fh = stack.enter_context(storage.open(name, "rb"))
        obj: Any = getattr(fh, "obj", None)  # django-storages' S3File: a boto3 Object
        if obj is not None:
            if obj.content_length != size:
                raise _corrupted(
                    name, label, size=size, sha256=sha256, read=f"{obj.content_length} bytes"
                )
            body = stack.enter_context(closing(obj.get()["Body"]))
            chunks: Iterator[bytes] = body.iter_chunks(chunk_size)
        else:
            chunks = iter(lambda: fh.read(min(chunk_size, size + 1 - read)), b"")
        for chunk in chunks:
            read += len(chunk)
            if read > size:
                raise _corrupted(name, label, size=size, sha256=sha256, read="more bytes")
            digest.update(chunk)
            yield chunk
    if read != size or digest.hexdigest() != sha256:
        raise _corrupted(
            name,
            label,
            size=size,
            sha256=sha256,
            read=f"{read} bytes with SHA-256 {digest.hexdigest()}",
        )


# --- Listing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    name: str
    size: int
    modified: datetime


def stored_files(storage: Storage, prefix: str) -> Iterator[StoredFile]:
    """Every file under ``prefix`` with its size and modification time, lazily.

    S3 (django-storages): ``ListObjectsV2`` pages of 1,000 keys, which carry the size and
    time, so nothing else is asked per file. Any other storage: ``listdir`` one folder
    at a time (the blob store fans out into 256 folders), ``size`` and
    ``get_modified_time`` per file. A file removed while it is listed is left out.
    """
    if hasattr(storage, "bucket_name") and hasattr(storage, "connection"):
        yield from _s3_files(storage, prefix)
    else:
        yield from _listed_files(storage, prefix.rstrip("/"))


def _s3_files(storage: Any, prefix: str) -> Iterator[StoredFile]:
    location = (storage.location or "").strip("/")
    key_prefix = f"{location}/{prefix}" if location else prefix
    paginator = storage.connection.meta.client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=storage.bucket_name, Prefix=key_prefix, PaginationConfig={"PageSize": S3_LIST_PAGE}
    )
    for page in pages:
        for entry in page.get("Contents", ()):
            key = entry["Key"]
            name = key[len(location) + 1 :] if location else key
            yield StoredFile(name=name, size=entry["Size"], modified=entry["LastModified"])


def _listed_files(storage: Storage, folder: str) -> Iterator[StoredFile]:
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for filename in sorted(files):
        name = posixpath.join(folder, filename)
        try:
            yield StoredFile(
                name=name, size=storage.size(name), modified=storage.get_modified_time(name)
            )
        except FileNotFoundError:
            continue
    for sub in sorted(folders):
        yield from _listed_files(storage, posixpath.join(folder, sub))
