"""SuperOffice (``/api/v1/Agents/EMail/``): the EMail agent's SendEMails."""

from django.urls import URLPattern, URLResolver, path, re_path

from .views import SendEMailsView, UnknownMethodView

urlpatterns: list[URLPattern | URLResolver] = [
    path("SendEMails", SendEMailsView.as_view(), name="superoffice-send-emails"),
    re_path(r"^(?P<method>.*)$", UnknownMethodView.as_view()),
]
