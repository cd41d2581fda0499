from django.urls import URLPattern, URLResolver, path

from .views import MyEmailsView, MyEmailView

urlpatterns: list[URLPattern | URLResolver] = [
    path("me/emails", MyEmailsView.as_view(), name="genesys-me-emails"),
    path("me/emails/<str:id>", MyEmailView.as_view(), name="genesys-me-email"),
]
