"""The Approvals page: users and queues whose sender address waits for a decision,
approved or rejected in place (htmx swaps the row) or by a plain POST that redirects
back. Only holders of ``crm.approve_email_address`` see it; the decision itself is
``email_address_approve`` / ``email_address_reject``, which check the permission again.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from common.errors import ApplicationError

from ..models import Queue, User
from ..selectors import queues_for_approval, users_for_approval
from ..services import APPROVE_PERMISSION, email_address_approve, email_address_reject
from . import AuthenticatedHttpRequest

KINDS: dict[str, type[User] | type[Queue]] = {"user": User, "queue": Queue}
DECISIONS = {
    "approve": (email_address_approve, "Approved"),
    "reject": (email_address_reject, "Rejected"),
}


def _forbidden(request: AuthenticatedHttpRequest, reason: str) -> HttpResponse:
    return render(
        request,
        "web/approvals_forbidden.html",
        {"nav": "approvals", "reason": reason},
        status=403,
    )


def _row(kind: str, target: User | Queue) -> dict[str, Any]:
    return {
        "kind": kind,
        "target": target,
        "name": target.display_name,
        "members": list(target.members.all()) if isinstance(target, Queue) else None,
    }


def _page(
    request: AuthenticatedHttpRequest, *, show_all: bool, error: str = "", status: int = 200
) -> HttpResponse:
    users = [_row("user", user) for user in users_for_approval(include_decided=show_all)]
    queues = [_row("queue", queue) for queue in queues_for_approval(include_decided=show_all)]
    return render(
        request,
        "web/approvals.html",
        {
            "nav": "approvals",
            "show_all": show_all,
            "sections": [
                ("users", "Users", users),
                ("queues", "Queues", queues),
            ],
            "error": error,
        },
        status=status,
    )


@login_required
def approvals(request: AuthenticatedHttpRequest) -> HttpResponse:
    if not request.user.has_perm(APPROVE_PERMISSION):
        return _forbidden(
            request,
            f"Approving sender addresses needs the permission {APPROVE_PERMISSION}; "
            "ask an administrator if you should have it.",
        )
    return _page(request, show_all=request.GET.get("show") == "all")


@login_required
@require_POST
def decide(request: AuthenticatedHttpRequest, kind: str, pk: int, decision: str) -> HttpResponse:
    model = KINDS.get(kind)
    if model is None or decision not in DECISIONS:
        raise Http404("no such approval action")
    # One call per model: given either model, the type checker answers their abstract base.
    target: User | Queue = (
        get_object_or_404(User, pk=pk) if model is User else get_object_or_404(Queue, pk=pk)
    )
    service, done = DECISIONS[decision]
    show_all = request.POST.get("show") == "all"
    try:
        target = service(
            target=target, actor=request.user, address=request.POST.get("address") or None
        )
    except ApplicationError as err:
        target.refresh_from_db()
        message = f"{target.display_name} <{target.email or 'no address'}>: {err.message}"
        if not request.user.has_perm(APPROVE_PERMISSION):
            return _forbidden(request, message)
        if request.htmx:
            return render(
                request,
                "web/approvals_row.html",
                {"row": _row(kind, target), "show_all": show_all, "error": message},
                status=err.http_status,
            )
        return _page(request, show_all=show_all, error=message, status=err.http_status)
    confirmation = f"{done} {target.email} ({target.display_name})."
    if request.htmx:
        return render(
            request,
            "web/approvals_row.html",
            {
                "row": _row(kind, target),
                "show_all": show_all,
                "confirmation": confirmation,
                "oob": True,
            },
        )
    messages.success(request, confirmation)
    url = reverse("approvals")
    return redirect(f"{url}?show=all" if show_all else url)


urlpatterns = [
    path("approvals/", approvals, name="approvals"),
    path(
        "approvals/<slug:kind>/<int:pk>/<slug:decision>/",
        decide,
        name="approvals-decide",
    ),
]
