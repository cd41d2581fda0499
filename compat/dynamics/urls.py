"""The routes of ``/api/data/v9.2/``.

The email entity sets and the SendEmail family come first; further routes are appended
to ``urlpatterns``' list below them; the catch-all (any other segment is Dataverse's
"Resource not found for the segment" 404) is added after the list and stays last.
"""

from django.urls import URLPattern, URLResolver, re_path

from .odata import resource_not_found

urlpatterns: list[URLPattern | URLResolver] = []

# Keep last: whatever no route above names.
urlpatterns += [re_path(r"^.*$", resource_not_found, name="dynamics-resource-not-found")]
