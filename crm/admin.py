from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import reverse

from common.admin_actions import run_action

from .models import Account, Contact, Organization, Queue, Tag, User
from .services import APPROVE_PERMISSION, email_address_approve, email_address_reject, mailbox_save

if TYPE_CHECKING:
    # What the mixin below is mixed into, so that its super() calls are checked.
    _ModelAdminBase = admin.ModelAdmin[Any]
else:
    _ModelAdminBase = object


class ApprovalActionsMixin(_ModelAdminBase):
    """Approve / Reject email address actions, offered only to holders of the permission."""

    actions = ["approve_email_address", "reject_email_address"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm(APPROVE_PERMISSION):
            actions.pop("approve_email_address", None)
            actions.pop("reject_email_address", None)
        return actions

    @admin.action(description="Approve email address")
    def approve_email_address(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda obj: email_address_approve(target=obj, actor=request.user),
            done="email address(es) approved",
        )

    @admin.action(description="Reject email address")
    def reject_email_address(self, request, queryset):
        run_action(
            self,
            request,
            queryset,
            lambda obj: email_address_reject(target=obj, actor=request.user),
            done="email address(es) rejected",
        )

    def save_model(self, request, obj, form, change):
        # The form ran the model's validation; the service adds the approval rule.
        mailbox_save(obj=obj)


@admin.register(User)
class UserAdmin(ApprovalActionsMixin, DjangoUserAdmin):
    list_display = (
        "username",
        "email",
        "full_name",
        "email_router_access_approval",
        "outgoing_delivery",
        "is_staff",
    )
    list_filter = ("email_router_access_approval", "outgoing_delivery", "is_staff", "is_superuser")
    search_fields = ("username", "email", "first_name", "last_name")
    readonly_fields = (
        "email_router_access_approval",
        "email_approval_decided_by",
        "email_approval_decided_at",
    )
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        (
            "Email",
            {
                "fields": (
                    "email_router_access_approval",
                    "email_approval_decided_by",
                    "email_approval_decided_at",
                    "outgoing_delivery",
                    "send_rate_per_minute",
                )
            },
        ),
    )


@admin.register(Queue)
class QueueAdmin(ApprovalActionsMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "email",
        "email_router_access_approval",
        "outgoing_delivery",
        "member_count",
    )
    list_filter = ("email_router_access_approval", "outgoing_delivery")
    search_fields = ("name", "email", "members__username")
    readonly_fields = (
        "email_router_access_approval",
        "email_approval_decided_by",
        "email_approval_decided_at",
        "created_at",
    )
    filter_horizontal = ("members",)
    fields = (
        "name",
        "email",
        "email_router_access_approval",
        "email_approval_decided_by",
        "email_approval_decided_at",
        "outgoing_delivery",
        "send_rate_per_minute",
        "members",
        "created_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_members=Count("members"))

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj):
        return obj._members


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "require_approval_for_user_email",
        "require_approval_for_queue_email",
        "use_tracking_token",
        "tracking_token_prefix",
        "max_attachment_bytes",
    )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        org = Organization.get()
        return HttpResponseRedirect(reverse("admin:crm_organization_change", args=[org.pk]))


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("name", "city", "email", "created_at")
    list_filter = ("city",)
    search_fields = ("name", "email", "city")


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("full_name", "email", "account", "city", "do_not_email", "do_not_bulk_email")
    list_filter = ("city", "do_not_email", "do_not_bulk_email", "tags")
    search_fields = ("first_name", "last_name", "email", "account__name")
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    filter_horizontal = ("tags",)
