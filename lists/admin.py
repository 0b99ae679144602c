from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from agencies.admin import ReadOnlyAdmin

from .models import (
    Batch,
    BatchRow,
    Case,
    CaseEvent,
    CatalogueEdition,
    Change,
    CreditList,
    Evidence,
    Holiday,
    Listing,
    Measure,
    PendingRecompute,
    Restriction,
    Source,
    Subject,
)
from .services.feed import with_data


@admin.register(CreditList)
class CreditListAdmin(admin.ModelAdmin):
    list_display = ["code", "name_zh", "agency", "kind", "is_public", "last_published_at", "last_synced_at"]
    list_filter = ["kind", "agency"]
    search_fields = ["code", "name_zh", "name_en"]


@admin.register(CatalogueEdition)
class CatalogueEditionAdmin(ReadOnlyAdmin):
    list_display = ["code", "is_current", "loaded_at"]


@admin.register(Measure)
class MeasureAdmin(ReadOnlyAdmin):
    list_display = ["code", "name_zh", "category", "kind", "edition"]
    list_filter = ["edition", "category", "kind"]
    search_fields = ["code", "name_zh", "name_en"]


@admin.register(Subject)
class SubjectAdmin(ReadOnlyAdmin):
    list_display = ["name", "subject_type", "identifier_display", "region_code", "is_synthetic"]
    list_filter = ["subject_type", "is_synthetic"]
    search_fields = ["name", "uscc"]
    exclude = ["person_id_hash"]


@admin.register(Listing)
class ListingAdmin(ReadOnlyAdmin):
    list_display = ["subject", "credit_list", "reference", "status", "decided_on", "expires_on"]
    list_filter = ["status", "credit_list"]
    raw_id_fields = ["subject", "first_batch", "last_batch"]
    list_select_related = ["subject", "credit_list"]


@admin.register(Restriction)
class RestrictionAdmin(ReadOnlyAdmin):
    list_display = ["subject", "measure", "starts_on", "ends_on", "lifted_at"]
    raw_id_fields = ["subject", "listing"]
    list_select_related = ["subject", "measure"]


@admin.register(PendingRecompute)
class PendingRecomputeAdmin(ReadOnlyAdmin):
    """Recomputes committed to but not yet recorded; one that stays here, its task has failed."""

    list_display = ["created_at", "reason", "batch"]
    list_select_related = ["batch"]


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "credit_list", "origin", "mode", "status", "created_at", "published_at"]
    list_filter = ["status", "origin", "credit_list"]


@admin.register(BatchRow)
class BatchRowAdmin(ReadOnlyAdmin):
    list_display = ["batch", "line_no", "outcome", "action"]
    raw_id_fields = ["batch", "listing"]


@admin.register(Change)
class ChangeAdmin(ReadOnlyAdmin):
    list_display = ["seq", "op", "reason", "credit_list", "listing", "created_at"]
    list_filter = ["op", "reason"]
    raw_id_fields = ["subject", "listing", "batch", "row"]
    # A listing a batch added keeps its data in its batch row: show what the feed shows.
    exclude = ["data"]
    readonly_fields = ["published_data"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Change]:
        return with_data(super().get_queryset(request))

    @admin.display(description="data, as the feed shows it")
    def published_data(self, change: Change) -> Any:
        return change.published  # type: ignore[attr-defined]


@admin.register(Holiday)
class HolidayAdmin(admin.ModelAdmin):
    """The working-day calendar behind case deadlines; operators keep it up to date."""

    list_display = ["date", "name", "is_working_day"]
    list_filter = ["is_working_day"]
    date_hierarchy = "date"


class EvidenceInline(admin.TabularInline):
    model = Evidence
    # No file link: evidence is served only through the permission-checked staff view.
    fields = ("original_name", "content_type", "size", "sha256", "uploaded_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    list_display = ["number", "kind", "agency", "status", "decision", "filed_at", "due_on", "escalated_at"]
    list_filter = ["kind", "status", "decision", "agency"]
    search_fields = ["number"]
    raw_id_fields = ["listing"]
    exclude = ["access_code_hash"]
    inlines = [EvidenceInline]


@admin.register(CaseEvent)
class CaseEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "case", "action", "actor"]
    list_filter = ["action"]
    raw_id_fields = ["case"]


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = [
        "credit_list", "url", "mode", "format", "health", "is_trusted", "last_success_at", "is_enabled",
    ]  # fmt: skip
    list_filter = ["health", "mode", "is_trusted", "is_enabled"]
    readonly_fields = [
        "trusted_by", "trusted_at", "health", "consecutive_failures", "last_attempt_at", "last_success_at",
        "last_error",
    ]  # fmt: skip

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        """Save, then record who waived approval (and when) through the sync service."""
        from .services.sync import distrust_source, trust_source

        was_trusted = bool(change and Source.objects.filter(pk=obj.pk, is_trusted=True).exists())
        if obj.is_trusted and not was_trusted:
            obj.is_trusted = False  # the check constraint wants trusted_by: the service sets all three
            super().save_model(request, obj, form, change)
            trust_source(source_id=obj.pk, user=request.user)
        else:
            super().save_model(request, obj, form, change)
            if not obj.is_trusted and was_trusted:
                distrust_source(source_id=obj.pk)
