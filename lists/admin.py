from django.contrib import admin

from agencies.admin import ReadOnlyAdmin

from .models import (
    Batch,
    BatchRow,
    CatalogueEdition,
    Change,
    CreditList,
    Listing,
    Measure,
    Restriction,
    Subject,
)


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
    raw_id_fields = ["subject", "listing", "batch"]
