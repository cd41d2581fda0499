"""Helpers shared by the admin of both apps: run a service, show its refusal as a message."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest

from .errors import ApplicationError


def run_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    objects: Iterable[Any],
    service: Callable[[Any], Any],
    *,
    done: str,
) -> None:
    """Apply ``service`` to each object; report successes once and each refusal by name.

    Each object is its own transaction: one refusal does not undo the others.
    """
    succeeded = 0
    for obj in objects:
        try:
            with transaction.atomic():
                service(obj)
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
        else:
            succeeded += 1
    if succeeded:
        modeladmin.message_user(request, f"{succeeded} {done}.", messages.SUCCESS)
