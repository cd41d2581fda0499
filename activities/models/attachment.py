from __future__ import annotations

from django.db import models
from django.db.models import Q


def blob_path(sha256: str) -> str:
    """Where a blob's bytes live in storage: content-addressed, fanned out by prefix."""
    return f"blobs/sha256/{sha256[:2]}/{sha256[2:]}"


class AttachmentBlob(models.Model):
    """Bytes stored once, keyed by their SHA-256; referenced by attachments."""

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.PositiveBigIntegerField()
    file = models.FileField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    # Moves forward whenever an attachment starts to use the blob; the garbage
    # collector only removes blobs unreferenced and untouched for a grace period.
    touched_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.sha256[:12]}… ({self.size} bytes)"


class ActivityMimeAttachment(models.Model):
    """A file on an email or a template (exactly one), pointing at its blob."""

    email = models.ForeignKey(
        "activities.Email",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="attachments",
    )
    template = models.ForeignKey(
        "activities.Template",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="attachments",
    )
    blob = models.ForeignKey(AttachmentBlob, on_delete=models.PROTECT, related_name="attachments")
    filename = models.CharField(max_length=255)
    mime_type = models.CharField(max_length=255, default="application/octet-stream")
    subject = models.CharField(max_length=400, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    # A received part's Content-ID (without the angle brackets): what the HTML body's
    # ``cid:`` references name, so the email page can show it inline.
    content_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(email__isnull=False, template__isnull=True)
                    | Q(email__isnull=True, template__isnull=False)
                ),
                name="attachment_exactly_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return self.filename

    @property
    def size(self) -> int:
        return self.blob.size

    @property
    def attachment_id(self) -> str:
        return self.blob.sha256
