from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Agency, ApiKey, AuditEvent, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Agency)
class AgencyAdmin(admin.ModelAdmin):
    list_display = ["code", "name_zh", "name_en", "level", "region_code"]
    search_fields = ["code", "name_zh", "name_en"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "agency", "role", "created_at"]
    list_filter = ["role", "agency"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "agency", "scopes", "created_at", "revoked_at", "last_used_at"]
    list_filter = ["agency"]
    # The secret is shown once when created through the staff area; the admin never sees it.
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Admin for rows that only the domain services may write."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "actor_label", "agency", "target_type", "target_id", "ip_address"]
    list_filter = ["action", "agency"]
    search_fields = ["target_id", "actor_label"]
