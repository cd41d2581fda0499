"""Microsoft Graph (``/graph/v1.0/``): sendMail, messages and their attachments.

Graph's paths are case-insensitive (``sendMail``, ``sendmail``): the routes below
match Graph's spelling, and ``any_case`` answers any other casing of them. Any other
path answers in Graph's shape (``CatchAllView``), never Django's 404 page.
"""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, re_path

from . import views

ID = r"(?P<message_id>[^/]+)"
ATTACHMENT_ID = r"(?P<attachment_id>[^/]+)"
FOLDER = r"mailFolders/(?P<folder>[^/]+)"

ROUTES: list[tuple[str, type[views.GraphView], str]] = [
    (r"me", views.MeView, "me"),
    (r"me/sendMail", views.SendMailView, "me-send-mail"),
    (r"users/(?P<user>[^/]+)/sendMail", views.UserSendMailView, "user-send-mail"),
    (r"me/messages", views.MessagesView, "messages"),
    (rf"me/{FOLDER}/messages", views.FolderMessagesView, "folder-messages"),
    (rf"me/messages/{ID}", views.MessageView, "message"),
    (rf"me/{FOLDER}/messages/{ID}", views.FolderMessageView, "folder-message"),
    (rf"me/messages/{ID}/send", views.MessageSendView, "message-send"),
    (rf"me/messages/{ID}/attachments", views.AttachmentsView, "attachments"),
    (rf"me/messages/{ID}/attachments/{ATTACHMENT_ID}", views.AttachmentView, "attachment"),
    (
        rf"me/messages/{ID}/attachments/{ATTACHMENT_ID}/\$value",
        views.AttachmentValueView,
        "attachment-value",
    ),
]

_ANY_CASE = [
    (re.compile(rf"^{pattern}/?$", re.IGNORECASE), view.as_view()) for pattern, view, _ in ROUTES
]
_UNKNOWN = views.CatchAllView.as_view()


def any_case(request: HttpRequest, path: str) -> HttpResponse:
    """A route of Graph's in another casing (``me/sendmail``), else Graph's answer to an
    unknown segment. (Not the ``(?i)`` flag in the routes: Django cannot reverse a
    pattern with one, and then no URL of the site reverses.)"""
    for regex, view in _ANY_CASE:
        match = regex.match(path)
        if match:
            return view(request, **match.groupdict())
    return _UNKNOWN(request, path=path)


urlpatterns: list[URLPattern | URLResolver] = [
    *(re_path(rf"^{p}/?$", view.as_view(), name=f"graph-{name}") for p, view, name in ROUTES),
    re_path(r"^(?P<path>.*)$", any_case, name="graph-any-case"),
]
