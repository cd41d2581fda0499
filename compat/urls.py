"""Where each vendor's API is mounted: at the vendor's own paths.

SuperOffice's agents share our ``/api/v1/`` prefix (``Agents/EMail/``, a name no
route of ours uses), so ``config.urls`` includes these before ``/api/v1/``.
"""

from django.urls import include, path

urlpatterns = [
    path("api/data/v9.2/", include("compat.dynamics.urls")),
    path("graph/v1.0/", include("compat.graph.urls")),
    path("api/v1/Agents/EMail/", include("compat.superoffice.urls")),
    path("api/v2/", include("compat.genesys.urls")),
]
