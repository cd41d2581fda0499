from django.urls import URLPattern, URLResolver, path

from .cloud import ConversationMessagesView
from .views import MyEmailsView, MyEmailView

urlpatterns: list[URLPattern | URLResolver] = [
    path("me/emails", MyEmailsView.as_view(), name="genesys-me-emails"),
    path("me/emails/<str:id>", MyEmailView.as_view(), name="genesys-me-email"),
    path(
        "conversations/emails/<str:conversationId>/messages",
        ConversationMessagesView.as_view(),
        name="genesys-conversation-messages",
    ),
]
