from __future__ import annotations

from django.conf import settings
from django.db import models


class RecordType(models.TextChoices):
    GLOBAL = "global", "Global"
    CONTACT = "contact", "Contact"
    ACCOUNT = "account", "Account"
    USER = "user", "User"


class Template(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    record_type = models.CharField(
        max_length=10, choices=RecordType.choices, default=RecordType.GLOBAL
    )
    language = models.CharField(max_length=10, default="en")
    subject = models.CharField(max_length=400, blank=True)
    body_html = models.TextField(blank=True)
    body_text = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title
