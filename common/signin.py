"""Sign-in attempts are limited per user and client address (django-axes): after
AXES_FAILURE_LIMIT failures in a row, that user from that address is refused for
AXES_COOLOFF_TIME, on the sign-in page, the admin's and the API's token endpoint alike,
with a 429 that says so and when to try again."""

from __future__ import annotations

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def lockout_message() -> str:
    minutes = max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    return (
        f"Too many failed sign-in attempts for this user from this address: signing in "
        f"is refused for {minutes} minute{'s' if minutes != 1 else ''}. Try again later, "
        f"or ask an administrator to unlock the account."
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """axes' AXES_LOCKOUT_CALLABLE: the API's error shape under /api/, the sign-in page
    with the reason elsewhere; 429 and Retry-After either way."""
    message = lockout_message()
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"detail": message, "code": "sign_in_locked"}, status=429
        )
    else:
        response = render(
            request,
            "web/login.html",
            {
                "lockout_message": message,
                "locked_username": request.POST.get("username", ""),
                "next": request.POST.get("next", ""),
            },
            status=429,
        )
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response
