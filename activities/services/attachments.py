"""Attachments on emails and templates, backed by the blob store."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Collection, Iterable
from typing import IO

from django.db import transaction

from common.errors import PermissionDeniedError
from crm.models import Organization, User

from ..addresses import check_header_value
from ..errors import InvalidTransition, ValidationFailed
from ..models import ActivityMimeAttachment, AttachmentBlob, Email, Template
from ..policies import EDITABLE_STATUSES, check_may_act
from ..selectors import attachments_visible_to
from .blobs import blob_store, blob_touch

MIME_TYPE_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)
DEFAULT_MIME_TYPE = "application/octet-stream"


def safe_filename(name: str) -> str:
    """A harmless file name: no directories, no control characters, at most 255 chars.

    ``../../etc/passwd`` becomes ``passwd``; an empty result becomes ``attachment``.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = name.strip().strip(".").strip()
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 254 - len(ext)] + dot + ext) if dot and len(ext) < 20 else name[:255]
    return name or "attachment"


def _mime_type(filename: str, given: str | None) -> str:
    if given:
        given = given.split(";", 1)[0].strip().lower()
        if not MIME_TYPE_RE.match(given):
            raise ValidationFailed(f"{given!r} is not a valid MIME type", code="invalid_mime_type")
        return given
    return mimetypes.guess_type(filename)[0] or DEFAULT_MIME_TYPE


def _check_owner(owner: Email | Template) -> None:
    if isinstance(owner, Email):
        status = Email.objects.filter(pk=owner.pk).values_list("status", flat=True).first()
        if status not in EDITABLE_STATUSES:  # a failed email is edited and sent again
            raise InvalidTransition(
                f"only draft and failed emails take attachments; this email is {status}",
                status=status or "",
            )


def _check_actor(owner: Email | Template, actor: User | None) -> None:
    """Refuse an actor who may not change this owner's files (403).

    For an email the rule of ``email_update``: the sender, a member of the sending
    queue, or a holder of ``send_as_any_sender``. For a template: staff. ``None`` is
    the system (demo data, tasks) and is not checked.
    """
    if actor is None:
        return
    if isinstance(owner, Template):
        if not actor.is_staff:
            raise PermissionDeniedError(
                "changing a template's attachments needs a staff account (is_staff)"
            )
        return
    email = Email.objects.select_related("sender_user", "sender_queue").get(pk=owner.pk)
    check_may_act(email, actor)


def _link(
    *, owner: Email | Template, blob: AttachmentBlob, filename: str, mime_type: str, subject: str
) -> ActivityMimeAttachment:
    with transaction.atomic():
        if isinstance(owner, Email):
            # Lock the email so that a send cannot slip between the check and the insert.
            Email.objects.select_for_update().filter(pk=owner.pk).exists()
        _check_owner(owner)
        if not blob_touch(blob=blob):
            raise ValidationFailed("the stored file was removed; upload it again", code="blob_gone")
        siblings = ActivityMimeAttachment.objects.filter(
            **{"email" if isinstance(owner, Email) else "template": owner}
        )
        position = siblings.count()
        return ActivityMimeAttachment.objects.create(
            email=owner if isinstance(owner, Email) else None,
            template=owner if isinstance(owner, Template) else None,
            blob=blob,
            filename=filename,
            mime_type=mime_type,
            subject=subject,
            position=position,
        )


def attachment_store(
    *,
    owner: Email | Template,
    source: IO[bytes] | Iterable[bytes] | bytes,
    filename: str,
    mime_type: str | None = None,
    subject: str = "",
    actor: User | None = None,
) -> tuple[ActivityMimeAttachment, bool]:
    """Attach bytes to a draft email or a template; return ``(attachment, reused)``.

    The bytes go to the blob store (hashed while streaming, limited to the
    organisation's ``max_attachment_bytes``); bytes already stored are reused. An
    ``actor`` must be allowed to change the owner (``_check_actor``); the email's
    status is checked first (409), then the actor (403), before any byte is read.
    """
    _check_owner(owner)
    _check_actor(owner, actor)
    filename = safe_filename(filename)
    mime = _mime_type(filename, mime_type)
    check_header_value(subject, label="attachment subject", max_length=400)
    limit = Organization.get().max_attachment_bytes
    blob, reused = blob_store(source=source, max_bytes=limit)
    attachment = _link(owner=owner, blob=blob, filename=filename, mime_type=mime, subject=subject)
    return attachment, reused


def attachment_from_blob(
    *,
    owner: Email | Template,
    sha256: str,
    filename: str | None = None,
    mime_type: str | None = None,
    subject: str = "",
    actor: User | None = None,
) -> ActivityMimeAttachment:
    """Attach bytes already stored, named by their SHA-256, without sending them again.

    An ``actor`` who is not staff may only reuse bytes they can already see (attached
    to a template or to an email visible to them): a hash is not a key to content
    someone else stored, so any other blob is refused as unknown. Without ``filename``
    (and ``mime_type``) those of such an attachment are used, else ``attachment``.
    """
    blob = AttachmentBlob.objects.filter(sha256=(sha256 or "").lower()).first()
    seen = ActivityMimeAttachment.objects.none()
    if blob is not None:
        seen = (
            ActivityMimeAttachment.objects.all()
            if actor is None or actor.is_staff
            else attachments_visible_to(actor)
        ).filter(blob=blob)
        if not (actor is None or actor.is_staff or seen.exists()):
            blob = None
    if blob is None:
        raise ValidationFailed(
            f"no stored file has the id {sha256!r}", code="unknown_attachment_id"
        )
    _check_owner(owner)
    _check_actor(owner, actor)
    if filename is None:
        named = seen.order_by("id").values("filename", "mime_type").first()
        filename = named["filename"] if named else "attachment"
        if named and mime_type is None:
            mime_type = named["mime_type"]
    filename = safe_filename(filename)
    check_header_value(subject, label="attachment subject", max_length=400)
    return _link(
        owner=owner,
        blob=blob,
        filename=filename,
        mime_type=_mime_type(filename, mime_type),
        subject=subject,
    )


def attachment_delete(*, attachment: ActivityMimeAttachment, actor: User | None = None) -> None:
    """Remove an attachment from a draft email or a template (the blob stays for GC).

    Any other status of the email is refused (409); an ``actor`` must be allowed to
    change the owner (403), as for adding.
    """
    owner = attachment.email or attachment.template
    assert owner is not None  # exactly one of them (attachment_exactly_one_owner)
    with transaction.atomic():
        if isinstance(owner, Email):
            # As in ``_link``: a send cannot slip between the check and the delete.
            Email.objects.select_for_update().filter(pk=owner.pk).exists()
        _check_owner(owner)
        _check_actor(owner, actor)
        attachment.delete()


def attachments_copy(
    *, source: Template | Email, target: Email, only: Collection[int] | None = None
) -> list[ActivityMimeAttachment]:
    """Give the draft ``target`` the attachments of a template or of another email (a
    forward), reusing the same blobs; with ``only``, just the attachments with those ids."""
    attachments = source.attachments.order_by("position", "id")
    if only is not None:
        attachments = attachments.filter(pk__in=list(only))
    with transaction.atomic():
        # The same rule and lock as a single attachment: a sent email's files are fixed.
        Email.objects.select_for_update().filter(pk=target.pk).exists()
        _check_owner(target)
        links = [
            ActivityMimeAttachment(
                email=target,
                blob_id=a.blob_id,
                filename=a.filename,
                mime_type=a.mime_type,
                subject=a.subject,
                position=a.position if only is None else position,
            )
            for position, a in enumerate(attachments)
        ]
        return ActivityMimeAttachment.objects.bulk_create(links)
