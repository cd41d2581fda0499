"""DRF throttles whose rates come from settings at request time (configurable, testable)."""

from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework import throttling

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
        return super().allow_request(request, view)


class AnonRateThrottle(_SettingsRate, throttling.AnonRateThrottle):
    setting_name = "CRM_API_THROTTLE_ANON"


class UserRateThrottle(_SettingsRate, throttling.UserRateThrottle):
    setting_name = "CRM_API_THROTTLE_USER"


class LoginRateThrottle(_SettingsRate, throttling.AnonRateThrottle):
    """Attempts to get a token, per client address: password guessing is slowed down."""

    scope = "login"
    setting_name = "CRM_API_THROTTLE_LOGIN"
