"""The staff web pages (server-rendered): the mail list. Reads go through the same
selectors as the API, so a page shows exactly the emails its user may see."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import path

from crm.models import Queue
from crm.views import AuthenticatedHttpRequest

from ..filters import EmailFilter
from ..models import Direction, EmailParty, EmailStatus
from ..records import record_get
from ..selectors import emails_matching, emails_visible_to

PAGE_SIZE = 25


@dataclass(frozen=True)
class Tab:
    slug: str
    title: str
    where: Q
    statuses: tuple[str, ...]


TABS = (
    Tab("drafts", "Drafts", Q(status=EmailStatus.DRAFT), (EmailStatus.DRAFT,)),
    Tab(
        "outbox",
        "Outbox",
        Q(status__in=[EmailStatus.PENDING_SEND, EmailStatus.SENDING, EmailStatus.FAILED]),
        (EmailStatus.PENDING_SEND, EmailStatus.SENDING, EmailStatus.FAILED),
    ),
    Tab("sent", "Sent", Q(status=EmailStatus.SENT), (EmailStatus.SENT,)),
    Tab("received", "Received", Q(direction=Direction.INCOMING), (EmailStatus.RECEIVED,)),
)
TAB_BY_SLUG = {tab.slug: tab for tab in TABS}


def _queues_for(user) -> QuerySet[Queue]:
    return Queue.objects.all() if user.is_staff else user.queues.all()


def _regarding_filter(data: dict) -> dict | None:
    """The record the list is filtered by (``regarding_type`` + ``regarding_id``), named."""
    type_name, pk = data.get("regarding_type"), data.get("regarding_id")
    if not type_name or pk is None:
        return None
    record = record_get(type_name, pk)
    return {
        "type": type_name,
        "id": pk,
        "name": str(record) if record is not None else f"{type_name} #{pk}",
    }


@login_required
def mail_list(request: AuthenticatedHttpRequest, tab: str = "outbox") -> HttpResponse:
    current = TAB_BY_SLUG.get(tab)
    if current is None:
        raise Http404("no such mailbox tab")
    emails = emails_visible_to(request.user).filter(current.where)
    filters = EmailFilter(request.GET, queryset=emails)
    status = 200
    regarding = None
    if filters.is_valid():
        emails = filters.qs
        regarding = _regarding_filter(filters.form.cleaned_data)
    else:
        emails, status = emails.none(), 400
    search = request.GET.get("q", "").strip()
    if search:
        emails = emails_matching(emails, search.split())
    emails = emails.select_related("sender_user", "sender_queue").order_by("-created_at", "-id")
    page = Paginator(emails, PAGE_SIZE).get_page(request.GET.get("page"))
    recipients: dict[int, list[str]] = {}
    for party in EmailParty.objects.filter(
        email_id__in=[email.pk for email in page], role__in=["to", "cc"]
    ).order_by("role", "position", "id"):
        recipients.setdefault(party.email_id, []).append(party.name or party.address)
    rows = [(email, recipients.get(email.pk, [])) for email in page]
    query = request.GET.copy()
    query.pop("page", None)
    unfiltered = query.copy()
    for key in ("regarding_type", "regarding_id"):
        unfiltered.pop(key, None)
    return render(
        request,
        "web/mail_list.html",
        {
            "nav": "mail",
            "tabs": TABS,
            "tab": current,
            "rows": rows,
            "page": page,
            "filters": filters,
            "errors": filters.errors if status == 400 else None,
            "queues": _queues_for(request.user),
            "statuses": [(s, EmailStatus(s).label) for s in current.statuses],
            "search": search,
            "query": query.urlencode(),
            "regarding": regarding,
            "without_regarding": unfiltered.urlencode(),
        },
        status=status,
    )


urlpatterns = [
    path("mail/", mail_list, name="mail"),
    path("mail/<slug:tab>/", mail_list, name="mail-tab"),
]
