"""Reading attachment uploads without ever holding more than the limit.

The organisation's ``max_attachment_bytes`` is enforced three times, each cheaper
than the next: from ``Content-Length`` before the body is read
(``check_request_size``), while a multipart body streams in (``SizeLimitUploadHandler``,
installed on the request for the attachment upload only), and by the blob store,
which counts the bytes it stores. Base64 bodies in JSON are decoded in slices
(``base64_chunks``) into the service, which streams them into the blob store.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator

from django.conf import settings
from django.core.files.uploadhandler import (
    FileUploadHandler,
    MemoryFileUploadHandler,
    TemporaryFileUploadHandler,
)

from crm.models import Organization

from .errors import AttachmentTooLarge, ValidationFailed

# Boundaries, part headers and the small form fields (object_type, object_id, subject,
# filename) around the file in a multipart body.
MULTIPART_OVERHEAD = 64 * 1024
# The JSON around a base64 body: keys, filename, MIME type, subject, whitespace.
JSON_OVERHEAD = 64 * 1024
# Characters of base64 text decoded at a time (a multiple of 4).
BASE64_SLICE = 256 * 1024

_WHITESPACE = re.compile(r"\s+")


def base64_size(size: int) -> int:
    """Length of the padded base64 text of ``size`` bytes."""
    return 4 * ((size + 2) // 3)


def too_large(limit: int) -> AttachmentTooLarge:
    return AttachmentTooLarge(
        f"the file is larger than the limit of {limit} bytes (Organization.max_attachment_bytes)"
    )


def content_length(request) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except (TypeError, ValueError):
        return 0


def check_request_size(request, *, limit: int) -> None:
    """Refuse (413) a body that cannot hold an attachment within ``limit``, unread.

    JSON bodies are parsed in memory, so they also stay within Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``; larger files go as ``multipart/form-data``,
    which streams.
    """
    length = content_length(request)
    media_type = (request.META.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        if length > limit + MULTIPART_OVERHEAD:
            raise too_large(limit)
    elif media_type == "application/json" or media_type.endswith("+json"):
        if length > base64_size(limit) + JSON_OVERHEAD:
            raise too_large(limit)
        memory_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if memory_limit is not None and length > memory_limit:
            raise AttachmentTooLarge(
                f"a JSON request body is limited to {memory_limit} bytes; "
                "send larger files as multipart/form-data"
            )


class SizeLimitUploadHandler(FileUploadHandler):
    """Counts the file bytes of a multipart body and stops it past the limit.

    It comes first in the chain and passes every chunk on, so the standard handlers
    still spool the file; going over raises ``AttachmentTooLarge`` (413) at once, the
    rest of the body is never read, and the parser closes the partial file.
    """

    def __init__(self, request=None, *, limit: Callable[[], int]):
        super().__init__(request)
        self._get_limit = limit
        self._limit: int | None = None
        self.received = 0

    @property
    def limit(self) -> int:
        if self._limit is None:
            self._limit = self._get_limit()
        return self._limit

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > self.limit + MULTIPART_OVERHEAD:
            raise too_large(self.limit)
        return None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            raise too_large(self.limit)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def upload_handlers(request) -> list[FileUploadHandler]:
    """The handlers for an attachment upload: the limit first, then Django's own."""
    return [
        SizeLimitUploadHandler(request, limit=lambda: Organization.get().max_attachment_bytes),
        MemoryFileUploadHandler(request),
        TemporaryFileUploadHandler(request),
    ]


def limit_upload(request) -> None:
    """Before a web form's file is read: refuse a body that cannot fit (413, unread) and
    install the handlers that stop the stream at the limit. The view must be
    ``csrf_exempt`` and check CSRF itself afterwards (``csrf_protect`` on an inner
    function): the CSRF check reads the body, after which the handlers are fixed."""
    check_request_size(request, limit=Organization.get().max_attachment_bytes)
    request.upload_handlers = upload_handlers(request)


def base64_chunks(text: str, *, slice_chars: int = BASE64_SLICE) -> Iterator[bytes]:
    """Decode base64 ``text`` a slice at a time; an invalid text raises ``ValidationFailed``.

    Whitespace (line breaks of MIME-style base64) is ignored; anything else outside the
    base64 alphabet, a wrong length or padding before the end is refused, so a bad
    body fails while streaming and the blob store keeps nothing.
    """
    pending = ""
    finished = False
    for start in range(0, len(text), slice_chars):
        piece = pending + _WHITESPACE.sub("", text[start : start + slice_chars])
        cut = len(piece) - len(piece) % 4
        pending = piece[cut:]
        if not cut:
            continue
        if finished:
            raise _invalid_base64("data after the padding")
        block = piece[:cut]
        finished = block.endswith("=")
        if "=" in block[:-2]:
            raise _invalid_base64("padding before the end")
        try:
            yield base64.b64decode(block, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _invalid_base64(str(exc)) from exc
    if pending:
        raise _invalid_base64("its length is not a multiple of 4")


def _invalid_base64(reason: str) -> ValidationFailed:
    return ValidationFailed(f"body is not valid base64: {reason}", code="invalid_base64")
