"""The web pages of the email activity (the API has its own router in ``crm.api``)."""

from django.urls import path

from .views import mail, unsubscribe

urlpatterns = [
    *mail.urlpatterns,
    path("unsubscribe/<str:token>/", unsubscribe.unsubscribe_view, name="unsubscribe"),
]
