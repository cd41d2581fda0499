"""The web pages of the CRM core; each module of ``crm.views`` lists its own routes."""

urlpatterns: list = []
