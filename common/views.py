"""The health endpoints: plain HTTP, no session, no sign-in, never redirected to HTTPS
(SECURE_REDIRECT_EXEMPT), so a load balancer can ask them."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .health import readiness


@never_cache
@require_safe
def live(request: HttpRequest) -> JsonResponse:
    """The process answers: nothing else is checked (a restart would not help)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    """Database, broker, blob storage and cache reachable: 200, else 503 with the reasons."""
    checks = readiness("web")
    ok = all(result == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )
