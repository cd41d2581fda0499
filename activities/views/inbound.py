"""The staff pages of kept inbound mail that did not become an email: "Blocked" (for
approvers: mail held until a mailbox's address is approved, with Release) and
"Unreadable" (for staff: what could not be read or was refused, with its raw .eml).
The rules are the services' (``inbound_release``) and the lists the selectors'."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from common.errors import ApplicationError
from crm.views import AuthenticatedHttpRequest

from ..downloads import ContentMissing, corrupted_response, protected_download
from ..errors import AttachmentCorrupted
from ..models import InboundMessage
from ..selectors import inbound_messages_held
from ..services.blobs import blob_open_verified
from ..services.inbound_release import APPROVE_PERMISSION, inbound_release
from .mail import TABS

PAGE_SIZE = 25
TITLES = {"blocked": "Blocked mail", "unreadable": "Unreadable mail"}


def _may_see(user, kind: str) -> bool:
    if kind == "blocked":
        return user.is_staff or user.has_perm(APPROVE_PERMISSION)
    return user.is_staff


def _forbidden(request: AuthenticatedHttpRequest, reason: str) -> HttpResponse:
    return render(
        request, "web/approvals_forbidden.html", {"nav": "mail", "reason": reason}, status=403
    )


def _refusal(kind: str) -> str:
    if kind == "blocked":
        return (
            f"Blocked mail is shown to staff and to holders of {APPROVE_PERMISSION}; ask an "
            "administrator if you should have it."
        )
    return "Unreadable mail is shown to staff only."


def _list(
    request: AuthenticatedHttpRequest, kind: str, *, error: str = "", status: int = 200
) -> HttpResponse:
    page = Paginator(inbound_messages_held(kind), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "web/inbound_held.html",
        {
            "nav": "mail",
            "tabs": TABS,
            "kind": kind,
            "title": TITLES[kind],
            "page": page,
            "may_release": kind == "blocked" and request.user.has_perm(APPROVE_PERMISSION),
            "may_see_unreadable": request.user.is_staff,
            "error": error,
        },
        status=status,
    )


@login_required
def blocked_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    if not _may_see(request.user, "blocked"):
        return _forbidden(request, _refusal("blocked"))
    return _list(request, "blocked")


@login_required
def unreadable_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    if not _may_see(request.user, "unreadable"):
        return _forbidden(request, _refusal("unreadable"))
    return _list(request, "unreadable")


@login_required
def raw_download(request: AuthenticatedHttpRequest, pk: int) -> FileResponse | HttpResponse:
    message = get_object_or_404(InboundMessage.objects.select_related("blob"), pk=pk)
    kind = "blocked" if message.status == "blocked" else "unreadable"
    if not (_may_see(request.user, kind) or request.user.is_staff):
        return _forbidden(request, _refusal(kind))
    try:
        fh = blob_open_verified(blob=message.blob, label=f"inbound message #{message.pk}")
    except FileNotFoundError as exc:
        raise ContentMissing("the kept raw bytes of this message are missing") from exc
    except AttachmentCorrupted as exc:
        return corrupted_response(exc)
    # As a download of an opaque type: a browser never renders what a stranger wrote.
    response = FileResponse(fh, content_type="application/octet-stream")
    return protected_download(response, filename=f"inbound-{message.pk}.eml")


@login_required
@require_POST
def release(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(InboundMessage, pk=pk)
    if not request.user.has_perm(APPROVE_PERMISSION):
        return _forbidden(request, _refusal("blocked"))
    try:
        released = inbound_release(message=message, actor=request.user)
    except ApplicationError as err:
        return _list(request, "blocked", error=err.message, status=err.http_status)
    if released.email_id is not None:
        messages.success(request, f"Released: the message is email #{released.email_id} now.")
    else:
        messages.warning(request, f"Read again, but it is {released.status}: {released.reason}")
    return redirect("inbound-blocked")


urlpatterns = [
    path("inbound/blocked/", blocked_list, name="inbound-blocked"),
    path("inbound/unreadable/", unreadable_list, name="inbound-unreadable"),
    path("inbound/<int:pk>/raw/", raw_download, name="inbound-raw"),
    path("inbound/<int:pk>/release/", release, name="inbound-release"),
]
