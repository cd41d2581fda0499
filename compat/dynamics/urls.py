from django.urls import URLPattern, URLResolver, path, re_path

from . import approvals, bulk, incoming, metadata

urlpatterns: list[URLPattern | URLResolver] = [
    # dynamics-more: $metadata, approvals, SendBulkMail, DeliverIncomingEmail
    path("", metadata.ServiceDocumentView.as_view(), name="dynamics-service"),
    path("$metadata", metadata.MetadataView.as_view(), name="dynamics-metadata"),
    path("systemusers", approvals.SystemUserList.as_view(), name="dynamics-systemusers"),
    re_path(r"^systemusers\((?P<key>[^()/]*)\)$", approvals.SystemUserDetail.as_view()),
    path("queues", approvals.QueueList.as_view(), name="dynamics-queues"),
    re_path(r"^queues\((?P<key>[^()/]*)\)$", approvals.QueueDetail.as_view()),
    path("organizations", approvals.OrganizationList.as_view(), name="dynamics-organizations"),
    re_path(r"^organizations\((?P<key>[^()/]*)\)$", approvals.OrganizationDetail.as_view()),
    path("SendBulkMail", bulk.SendBulkMailView.as_view(), name="dynamics-sendbulkmail"),
    path(
        "emails/Microsoft.Dynamics.CRM.DeliverIncomingEmail",
        incoming.DeliverIncomingEmailView.as_view(),
        name="dynamics-deliverincomingemail",
    ),
    path("DeliverIncomingEmail", incoming.DeliverIncomingEmailView.as_view()),
]
