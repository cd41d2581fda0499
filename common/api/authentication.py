"""Token authentication: ``Authorization: Token <key>`` and ``Authorization: Bearer <key>``.

The same tokens (``auth/token/``); Bearer is the scheme that Microsoft Graph, Dynamics
365 and Genesys clients send, so their SDKs work with a static token unchanged.
"""

from __future__ import annotations

from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    keyword = "Bearer"
