"""The REST API under /api/v1/: each module registers its viewsets on one router."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from activities.api import attachments as attachment_api
from activities.api import bulk as bulk_api
from activities.api import emails as email_api
from activities.api import suppression as suppression_api
from activities.api import templates as template_api
from activities.api import webhooks as webhook_api
from crm.api import views as crm_api

router = DefaultRouter()
for module in (
    crm_api,
    email_api,
    template_api,
    attachment_api,
    bulk_api,
    suppression_api,
    webhook_api,
):
    module.register(router)

urlpatterns = [
    path("auth/token/", crm_api.ObtainAuthTokenView.as_view(), name="api-token"),
    *crm_api.extra_urls(),
    path("", include(router.urls)),
]
