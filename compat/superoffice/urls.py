"""SuperOffice (``/api/v1/Agents/EMail/``): the EMail agent's SendEMails.

SuperOffice's routes are read in any letter case (``SendEmails``), so this one is too.
"""

from django.urls import URLPattern, URLResolver, re_path

from .views import SendEMailsView

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(r"^(?i:sendemails)$", SendEMailsView.as_view(), name="superoffice-send-emails"),
]
