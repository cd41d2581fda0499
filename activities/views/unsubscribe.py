"""Pages for the recipients of our mail (no login): the unsubscribe link.

RFC 8058: a mail client's one-click unsubscribe is a POST with the body
``List-Unsubscribe=One-Click`` and no cookies, so the POST is exempt from CSRF (the
signed token is the proof). A GET never unsubscribes, because link scanners and
prefetchers follow GET links in mail; it shows a page with one button that POSTs.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from ..errors import InvalidUnsubscribeLink
from ..services.suppression import email_for_unsubscribe_token, unsubscribe


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe_view(request: HttpRequest, token: str) -> HttpResponse:
    try:
        if request.method == "POST":
            one_click = request.POST.get("List-Unsubscribe") == "One-Click"
            result = unsubscribe(token=token, how="one-click" if one_click else "link")
            return render(request, "activities/unsubscribe.html", {"done": True, "result": result})
        email = email_for_unsubscribe_token(token)
    except InvalidUnsubscribeLink as exc:
        return render(request, "activities/unsubscribe.html", {"error": exc.message}, status=400)
    if email.unsubscribed_at:
        return render(request, "activities/unsubscribe.html", {"done": True, "result": None})
    return render(request, "activities/unsubscribe.html", {"confirm": True})
