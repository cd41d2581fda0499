"""Permission classes of the CRM records whose refusals name what is missing."""

from __future__ import annotations

from rest_framework import permissions

from crm.services import APPROVE_PERMISSION


class CanApproveEmailAddresses(permissions.BasePermission):
    message = f"approving or rejecting email addresses needs the permission {APPROVE_PERMISSION}"

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm(APPROVE_PERMISSION))
