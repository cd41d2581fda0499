"""Permission classes whose refusals name what is missing."""

from __future__ import annotations

from rest_framework import permissions

SAFE = permissions.SAFE_METHODS


class StaffForWrites(permissions.BasePermission):
    """Anyone signed in reads; writing needs a staff account."""

    message = "this change needs a staff account (is_staff)"

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE or bool(request.user and request.user.is_staff)


class StaffForDeletes(permissions.BasePermission):
    message = "deleting needs a staff account (is_staff)"

    def has_permission(self, request, view) -> bool:
        return request.method != "DELETE" or bool(request.user and request.user.is_staff)


class StaffOnly(permissions.BasePermission):
    message = "this needs a staff account (is_staff)"

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_staff)
