"""Microsoft Graph (``/graph/v1.0/``): sendMail, messages and their attachments.

Graph's paths are case-insensitive (``sendMail``, ``sendmail``), and so are these.
Any other path answers in Graph's shape (``CatchAllView``), never Django's 404 page.
"""

from django.urls import URLPattern, URLResolver, re_path

from . import views

ID = r"(?P<message_id>[^/]+)"
FOLDER = r"mailFolders/(?P<folder>[^/]+)"


def graph(pattern: str, view, name: str) -> URLPattern:
    return re_path(rf"(?i)^{pattern}/?$", view.as_view(), name=f"graph-{name}")


urlpatterns: list[URLPattern | URLResolver] = [
    graph(r"me", views.MeView, "me"),
    graph(r"me/sendMail", views.SendMailView, "me-send-mail"),
    graph(r"users/(?P<user>[^/]+)/sendMail", views.SendMailView, "user-send-mail"),
    graph(r"me/messages", views.MessagesView, "messages"),
    graph(rf"me/{FOLDER}/messages", views.MessagesView, "folder-messages"),
    graph(rf"me/messages/{ID}", views.MessageView, "message"),
    graph(rf"me/{FOLDER}/messages/{ID}", views.MessageView, "folder-message"),
    graph(rf"me/messages/{ID}/send", views.MessageSendView, "message-send"),
    graph(rf"me/messages/{ID}/attachments", views.AttachmentsView, "attachments"),
    graph(
        rf"me/messages/{ID}/attachments/(?P<attachment_id>[^/]+)",
        views.AttachmentView,
        "attachment",
    ),
    graph(
        rf"me/messages/{ID}/attachments/(?P<attachment_id>[^/]+)/\$value",
        views.AttachmentValueView,
        "attachment-value",
    ),
    re_path(r"^(?P<path>.*)$", views.CatchAllView.as_view(), name="graph-unknown"),
]
