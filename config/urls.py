from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from common import views as common_views

urlpatterns = [
    path("health/", common_views.live, name="health-live"),
    path("health/ready/", common_views.ready, name="health-ready"),
    path("", RedirectView.as_view(pattern_name="mail", permanent=False)),
    path(
        "sign-in/",
        auth_views.LoginView.as_view(
            template_name="web/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("sign-out/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("crm.web_urls")),
    path("", include("activities.urls")),
    path("admin/", admin.site.urls),
    # Providers' inbound webhooks (activities/inbound_webhooks.py), at anymail's paths.
    path("anymail/", include("activities.inbound_webhooks")),
    # The vendors' APIs (compat/), at their own paths; before /api/v1/ (SuperOffice).
    path("", include("compat.urls")),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

handler404 = "common.api.errors_views.not_found"
handler400 = "common.api.errors_views.bad_request"
