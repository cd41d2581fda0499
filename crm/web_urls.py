"""The web pages of the CRM core; each module of ``crm.views`` lists its own routes."""

from .views import approvals

urlpatterns = [*approvals.urlpatterns]
