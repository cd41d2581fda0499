"""Serving an attachment's bytes, the same way for the API and the staff pages.

Always as a download (``Content-Disposition: attachment``), never sniffed, and under a
policy that runs and loads nothing should a browser open it anyway: an attachment is
whatever its sender wrote, HTML and SVG included.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TypeVar
from urllib.parse import quote

from django.http import FileResponse, Http404, HttpResponse
from django.http.response import HttpResponseBase

from .errors import AttachmentCorrupted
from .models import ActivityMimeAttachment
from .services.attachments import safe_filename
from .services.blobs import blob_open_verified


class ContentMissing(Http404):
    """The attachment exists but its stored bytes do not (storage lost or moved them)."""

    code = "content_missing"


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """``attachment`` (or ``inline``) with a quoted ASCII name, plus RFC 6266
    ``filename*`` when needed."""
    name = safe_filename(filename)
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    fallback = re.sub(r'[^\x20-\x7e]|["\\%]', "_", fallback).strip()
    if not fallback.strip("._ "):
        fallback = "attachment"
    elif fallback.startswith("."):
        fallback = "attachment" + fallback
    header = f'{"inline" if inline else "attachment"}; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


ResponseT = TypeVar("ResponseT", bound=HttpResponseBase)


def protected_download(
    response: ResponseT, *, filename: str, inline: bool = False, cache: str = "private"
) -> ResponseT:
    """Give a response of bytes someone else wrote the headers of a safe download: its
    name, no sniffing, and a policy under which it runs and loads nothing."""
    response["Content-Disposition"] = content_disposition(filename, inline=inline)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = cache
    return response


def attachment_response(
    attachment: ActivityMimeAttachment, *, inline: bool = False
) -> FileResponse:
    """The attachment's bytes, verified against its SHA-256, as a download (``inline``:
    shown in place, for the email page's inline images, which the caller has checked
    are of an image type; still not sniffed and under the same policy).

    The bytes are read whole and checked before the response is made
    (``blob_open_verified``), so a corrupted blob answers an error and never a byte of
    the wrong content. Raises ``ContentMissing`` (an ``Http404``) when the stored bytes
    are gone and ``AttachmentCorrupted`` (502) when they no longer match.
    """
    blob = attachment.blob
    if not blob.file.name:
        raise ContentMissing("the stored bytes of this attachment are missing")
    try:
        fh = blob_open_verified(blob=blob, label=attachment.filename)
    except FileNotFoundError as exc:
        raise ContentMissing("the stored bytes of this attachment are missing") from exc
    response = FileResponse(fh, content_type=attachment.mime_type)
    protected_download(response, filename=attachment.filename, inline=inline)
    response["ETag"] = f'"{blob.sha256}"'
    return response


def corrupted_response(exc: AttachmentCorrupted) -> HttpResponse:
    """The staff pages' answer to a corrupted attachment: the cause in words, 502."""
    return HttpResponse(
        exc.message, status=exc.http_status, content_type="text/plain; charset=utf-8"
    )
