from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from activities import web
from activities.views import unsubscribe_view

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="mail", permanent=False)),
    path("mail/", web.mail_list, name="mail"),
    path("mail/<slug:tab>/", web.mail_list, name="mail-tab"),
    path(
        "sign-in/",
        auth_views.LoginView.as_view(
            template_name="web/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("sign-out/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("crm.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("unsubscribe/<str:token>/", unsubscribe_view, name="unsubscribe"),
]

handler404 = "crm.api.errors_views.not_found"
