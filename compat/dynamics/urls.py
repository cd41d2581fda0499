"""The routes of ``/api/data/v9.2/``.

The email entity sets and the SendEmail family come first; further routes are appended
to ``urlpatterns``' list below them; the catch-all (any other segment is Dataverse's
"Resource not found for the segment" 404) is added after the list and stays last.
"""

from django.urls import URLPattern, URLResolver, path, re_path

from . import actions, approvals, bulk, incoming, metadata, template_set, views
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
    # dynamics-more: the service document, $metadata, approvals, SendBulkMail and
    # DeliverIncomingEmail.
    path("", metadata.ServiceDocumentView.as_view(), name="dynamics-service"),
    re_path(r"^\$metadata$", metadata.MetadataView.as_view(), name="dynamics-metadata"),
    path("systemusers", approvals.SystemUserList.as_view(), name="dynamics-systemusers"),
    path("systemusers(<str:guid>)", approvals.SystemUserDetail.as_view()),
    path("queues", approvals.QueueList.as_view(), name="dynamics-queues"),
    path("queues(<str:guid>)", approvals.QueueDetail.as_view()),
    path("organizations", approvals.OrganizationList.as_view(), name="dynamics-organizations"),
    path("organizations(<str:guid>)", approvals.OrganizationDetail.as_view()),
    path("templates", template_set.TemplateList.as_view(), name="dynamics-templates"),
    path("templates(<str:guid>)", template_set.TemplateDetail.as_view()),
    path("SendBulkMail", bulk.SendBulkMailView.as_view(), name="dynamics-send-bulk-mail"),
    path(
        "emails/Microsoft.Dynamics.CRM.DeliverIncomingEmail",
        incoming.DeliverIncomingEmailView.as_view(),
        name="dynamics-deliver-incoming-email",
    ),
    path("DeliverIncomingEmail", incoming.UnboundDeliverIncomingEmailView.as_view()),
    # A function: called as WhoAmI() (and WhoAmI, as some clients do).
    re_path(r"^WhoAmI\(\)$", approvals.WhoAmIView.as_view(), name="dynamics-who-am-i"),
    path("WhoAmI", approvals.WhoAmIWithoutParentheses.as_view()),
]

# Keep last: whatever no route above names.
urlpatterns += [re_path(r"^.*$", resource_not_found, name="dynamics-resource-not-found")]
