"""DRF throttles whose rates come from settings at request time (configurable, testable).

The counters are in the shared cache. A cache that cannot be reached (its Redis down or
hung: ``CRM_REDIS_SOCKET_TIMEOUT`` bounds the wait) lets the request through with a
warning instead of failing it with a 500: the API keeps working through a Redis outage,
unthrottled meanwhile (sign-in lockouts are in the database and still hold).
"""

import logging
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from rest_framework import throttling

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    # What the mixin below is mixed into, so that its super() call is checked.
    _SimpleRateThrottle = throttling.SimpleRateThrottle
else:
    _SimpleRateThrottle = object


class _SettingsRate(_SimpleRateThrottle):
    setting_name = ""

    def get_rate(self):
        return getattr(settings, self.setting_name) or None

    def allow_request(self, request, view):
        # DRF reads the rate once at construction; read it per request instead.
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except (redis.RedisError, OSError) as exc:
            logger.warning(
                "throttle counters unavailable (%s: %s); request let through",
                type(exc).__name__,
                exc,
            )
            return True


class AnonRateThrottle(_SettingsRate, throttling.AnonRateThrottle):
    setting_name = "CRM_API_THROTTLE_ANON"


class UserRateThrottle(_SettingsRate, throttling.UserRateThrottle):
    setting_name = "CRM_API_THROTTLE_USER"


class LoginRateThrottle(_SettingsRate, throttling.AnonRateThrottle):
    """Attempts to get a token, per client address: password guessing is slowed down."""

    scope = "login"
    setting_name = "CRM_API_THROTTLE_LOGIN"
