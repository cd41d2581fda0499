"""The web pages of the email activity (the API has its own router in ``config.api_urls``)."""

from django.urls import path

from .views import bulk, compose, email, inbound, mail, outbox, templates, unsubscribe

# The mail list's ``mail/<slug:tab>/`` comes last: it would take ``mail/new/`` and
# ``mail/12/`` for tabs.
urlpatterns = [
    *email.urlpatterns,
    *compose.urlpatterns,
    *templates.urlpatterns,
    *outbox.urlpatterns,
    *bulk.urlpatterns,
    *inbound.urlpatterns,
    *mail.urlpatterns,
    path("unsubscribe/<str:token>/", unsubscribe.unsubscribe_view, name="unsubscribe"),
]
