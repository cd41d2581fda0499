"""The outbox viewer of the embedded default: the messages ``OutboxBackend`` wrote to
``settings.OUTBOX_DIR``, listed from their headers and shown as they would arrive (the
HTML body sanitised in a sandboxed frame, every MIME part downloadable, the source as
text). Staff only. A message is found by its name in the folder's listing (see
``activities.outbox``), so no request reaches a file outside the folder.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import path, reverse

from crm.views import AuthenticatedHttpRequest

from .. import outbox
from ..downloads import protected_download
from ..html import FRAME_SANDBOX, body_frame_response, sanitize_email_html

PAGE_SIZE = 25


def _refusal(request: AuthenticatedHttpRequest, *, not_found: bool) -> HttpResponse | None:
    """The page to answer instead, when the user is not staff or there is no outbox."""
    if not request.user.is_staff:
        return render(
            request,
            "web/outbox_unavailable.html",
            {
                "nav": "outbox",
                "reason": "The outbox viewer is for staff accounts (is_staff): it shows "
                "every message the application sent, to anyone.",
            },
            status=403,
        )
    if not outbox.outbox_enabled():
        return render(
            request,
            "web/outbox_unavailable.html",
            {
                "nav": "outbox",
                "destination": outbox.mail_destination(),
                "backend": settings.EMAIL_BACKEND,
            },
            status=404 if not_found else 200,
        )
    return None


def _message_path(name: str):
    found = outbox.message_path(name)
    if found is None:
        raise Http404("no such message in the outbox")
    return found


@login_required
def outbox_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    refused = _refusal(request, not_found=False)
    if refused:
        return refused
    page = Paginator(outbox.message_names(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "web/outbox.html",
        {
            "nav": "outbox",
            "page": page,
            "messages_on_page": [outbox.summary(name) for name in page],
            "folder": str(outbox.outbox_dir()),
        },
    )


@login_required
def outbox_message(request: AuthenticatedHttpRequest, name: str) -> HttpResponse:
    refused = _refusal(request, not_found=True)
    if refused:
        return refused
    opened = outbox.open_message(_message_path(name))
    remote_images = request.GET.get("images") == "1"
    body_url = reverse("outbox-body", args=[name])
    blocked = 0
    if opened.html.strip() and not remote_images:
        blocked = sanitize_email_html(opened.html).blocked_images
    return render(
        request,
        "web/outbox_message.html",
        {
            "nav": "outbox",
            "m": opened,
            "subject": next((v for h, v in opened.headers if h == "Subject"), ""),
            "FRAME_SANDBOX": FRAME_SANDBOX,
            "frame_src": f"{body_url}?images=1" if remote_images else body_url,
            "remote_images": remote_images,
            "blocked_images": blocked,
        },
    )


@login_required
def outbox_body(request: AuthenticatedHttpRequest, name: str) -> HttpResponse:
    refused = _refusal(request, not_found=True)
    if refused:
        return refused
    opened = outbox.open_message(_message_path(name))
    return body_frame_response(
        html=opened.html, text=opened.text, remote_images=request.GET.get("images") == "1"
    )


@login_required
def outbox_part(request: AuthenticatedHttpRequest, name: str, n: int) -> HttpResponse:
    refused = _refusal(request, not_found=True)
    if refused:
        return refused
    opened = outbox.open_message(_message_path(name))
    part = outbox.message_part(opened.message, n)
    if part is None:
        raise Http404("the message has no such part")
    response = HttpResponse(outbox.part_bytes(part), content_type=part.get_content_type())
    filename = part.get_filename() or f"part-{n}"
    return protected_download(response, filename=filename, cache="private, no-store")


@login_required
def outbox_source(request: AuthenticatedHttpRequest, name: str) -> HttpResponseBase:
    refused = _refusal(request, not_found=True)
    if refused:
        return refused
    response = FileResponse(
        _message_path(name).open("rb"), content_type="text/plain; charset=utf-8"
    )
    return protected_download(response, filename=name, inline=True, cache="private, no-store")


urlpatterns = [
    path("outbox/", outbox_list, name="outbox"),
    path("outbox/<str:name>/", outbox_message, name="outbox-message"),
    path("outbox/<str:name>/body/", outbox_body, name="outbox-body"),
    path("outbox/<str:name>/parts/<int:n>/", outbox_part, name="outbox-part"),
    path("outbox/<str:name>/source/", outbox_source, name="outbox-source"),
]
