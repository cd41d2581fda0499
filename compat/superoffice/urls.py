"""SuperOffice (``/api/v1/Agents/EMail/``): the EMail agent's SendEMails."""

from django.urls import URLPattern, URLResolver, path

from .views import SendEMailsView

urlpatterns: list[URLPattern | URLResolver] = [
    path("SendEMails", SendEMailsView.as_view(), name="superoffice-send-emails"),
]
