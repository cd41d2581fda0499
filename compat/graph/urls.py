"""Microsoft Graph (``/graph/v1.0/``): sendMail, messages and their attachments.

Graph's paths are case-insensitive (``sendMail``, ``sendmail``), and so are these.
Any other path answers in Graph's shape (``CatchAllView``), never Django's 404 page.
"""

import re

from django.urls import URLPattern, URLResolver, re_path

from . import views

ID = "{message_id}"
FOLDER = "mailFolders/{folder}"
NAMED = {
    "{message_id}": r"(?P<message_id>[^/]+)",
    "{folder}": r"(?P<folder>[^/]+)",
    "{user}": r"(?P<user>[^/]+)",
    "{attachment_id}": r"(?P<attachment_id>[^/]+)",
}


_WORD = re.compile(r"[A-Za-z]+")


def _any_case(pattern: str) -> str:
    # Not the (?i) flag: Django cannot reverse a pattern with one, and then no URL of
    # the site reverses. Each letter of the path's words becomes a class ([sS]).
    def letters(match: re.Match[str]) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" for c in match.group(0))

    return _WORD.sub(letters, pattern)


def graph(pattern: str, view, name: str) -> URLPattern:
    regex = _any_case(pattern)
    for placeholder, group in NAMED.items():
        regex = regex.replace(_any_case(placeholder), group)
    return re_path(rf"^{regex}/?$", view.as_view(), name=f"graph-{name}")


urlpatterns: list[URLPattern | URLResolver] = [
    graph(r"me", views.MeView, "me"),
    graph(r"me/sendMail", views.SendMailView, "me-send-mail"),
    graph("users/{user}/sendMail", views.SendMailView, "user-send-mail"),
    graph(r"me/messages", views.MessagesView, "messages"),
    graph(rf"me/{FOLDER}/messages", views.MessagesView, "folder-messages"),
    graph(rf"me/messages/{ID}", views.MessageView, "message"),
    graph(rf"me/{FOLDER}/messages/{ID}", views.MessageView, "folder-message"),
    graph(rf"me/messages/{ID}/send", views.MessageSendView, "message-send"),
    graph(rf"me/messages/{ID}/attachments", views.AttachmentsView, "attachments"),
    graph(
        f"me/messages/{ID}/attachments/{{attachment_id}}",
        views.AttachmentView,
        "attachment",
    ),
    graph(
        f"me/messages/{ID}/attachments/{{attachment_id}}/\\$value",
        views.AttachmentValueView,
        "attachment-value",
    ),
    re_path(r"^(?P<path>.*)$", views.CatchAllView.as_view(), name="graph-unknown"),
]
