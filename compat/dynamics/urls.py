"""The routes of ``/api/data/v9.2/``.

The email entity sets and the SendEmail family come first; further routes are appended
to ``urlpatterns``' list below them; the catch-all (any other segment is Dataverse's
"Resource not found for the segment" 404) is added after the list and stays last.
"""

from django.urls import URLPattern, URLResolver, path, re_path

from . import actions, views
from .odata import resource_not_found

urlpatterns: list[URLPattern | URLResolver] = [
    path("emails", views.EmailsView.as_view(), name="dynamics-emails"),
    path("emails(<str:guid>)", views.EmailView.as_view(), name="dynamics-email"),
    path(
        "emails(<str:guid>)/Microsoft.Dynamics.CRM.SendEmail",
        actions.SendEmailView.as_view(),
        name="dynamics-send-email",
    ),
    path(
        "activitymimeattachments",
        views.AttachmentsView.as_view(),
        name="dynamics-attachments",
    ),
    path(
        "activitymimeattachments(<str:guid>)",
        views.AttachmentView.as_view(),
        name="dynamics-attachment",
    ),
    path(
        "SendEmailFromTemplate",
        actions.SendEmailFromTemplateView.as_view(),
        name="dynamics-send-email-from-template",
    ),
    path(
        "InstantiateTemplate",
        actions.InstantiateTemplateView.as_view(),
        name="dynamics-instantiate-template",
    ),
    path(
        "BackgroundSendEmail",
        actions.BackgroundSendEmailView.as_view(),
        name="dynamics-background-send-email",
    ),
    path(
        "GetTrackingTokenEmail",
        actions.GetTrackingTokenEmailView.as_view(),
        name="dynamics-get-tracking-token-email",
    ),
]

# Keep last: whatever no route above names.
urlpatterns += [re_path(r"^.*$", resource_not_found, name="dynamics-resource-not-found")]
