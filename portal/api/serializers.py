"""API serializers: explicit fields, no logic. A person's ID number only ever appears masked."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from agencies.models import Agency
from lists.models import (
    CreditList,
    Export,
    Listing,
    Measure,
    Restriction,
    Subject,
    SubjectType,
    WatchItem,
    Watchlist,
    Webhook,
    WebhookDelivery,
)


class AgencySerializer(serializers.ModelSerializer):
    class Meta:
        model = Agency
        fields = ["code", "name_zh", "name_en", "level", "region_code", "website"]


class CreditListSerializer(serializers.ModelSerializer):
    agency = serializers.SlugRelatedField(slug_field="code", read_only=True)  # type: ignore[var-annotated]

    class Meta:
        model = CreditList
        fields = [
            "code",
            "agency",
            "name_zh",
            "name_en",
            "kind",
            "subject_types",
            "legal_basis",
            "publication_period",
            "is_repairable",
            "last_published_at",
        ]


class MeasureSerializer(serializers.ModelSerializer):
    edition = serializers.SlugRelatedField(slug_field="code", read_only=True)  # type: ignore[var-annotated]
    triggered_by = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)  # type: ignore[var-annotated]

    class Meta:
        model = Measure
        fields = [
            "code",
            "edition",
            "name_zh",
            "name_en",
            "category",
            "kind",
            "implementing_agency",
            "legal_basis",
            "triggered_by",
            "subject_types",
            "duration_months",
        ]


class SubjectSerializer(serializers.ModelSerializer):
    identifier = serializers.CharField(source="identifier_display", read_only=True)
    kind = serializers.CharField(source="subject_type", read_only=True)

    class Meta:
        model = Subject
        fields = ["id", "name", "name_en", "identifier", "aliases", "kind", "subject_type", "region_code"]


class SearchHitSerializer(SubjectSerializer):
    score = serializers.FloatField(read_only=True)
    matched = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta(SubjectSerializer.Meta):
        fields = [*SubjectSerializer.Meta.fields, "score", "matched"]


class SubjectSearchResponseSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    total_is_capped = serializers.BooleanField()
    page = serializers.IntegerField()
    per_page = serializers.IntegerField()
    results = SearchHitSerializer(many=True)


class ListingSerializer(serializers.ModelSerializer):
    """A listing with its provenance: agency, list, reference, batch, first/last seen, last changed."""

    list = serializers.CharField(source="credit_list.code", read_only=True)
    agency = serializers.CharField(source="credit_list.agency.code", read_only=True)
    subject = serializers.IntegerField(source="subject_id", read_only=True)
    first_batch = serializers.IntegerField(source="first_batch_id", read_only=True, allow_null=True)
    last_batch = serializers.IntegerField(source="last_batch_id", read_only=True, allow_null=True)
    last_seen_at = serializers.DateTimeField(
        source="seen_at", read_only=True, help_text="When a file of the agency last confirmed the listing"
    )

    class Meta:
        model = Listing
        fields = [
            "id",
            "subject",
            "list",
            "agency",
            "reference",
            "reason",
            "severity",
            "decided_on",
            "published_on",
            "expires_on",
            "status",
            "first_batch",
            "last_batch",
            "first_seen_at",
            "last_seen_at",
            "last_changed_at",
        ]


class RestrictionSerializer(serializers.ModelSerializer):
    measure = serializers.CharField(source="measure.code", read_only=True)
    measure_name = serializers.CharField(source="measure.name_zh", read_only=True)
    kind = serializers.CharField(source="measure.kind", read_only=True)
    legal_basis = serializers.JSONField(source="measure.legal_basis", read_only=True)
    listing = serializers.IntegerField(source="listing_id", read_only=True)

    class Meta:
        model = Restriction
        fields = ["measure", "measure_name", "kind", "legal_basis", "listing", "starts_on", "ends_on"]


class SubjectDetailSerializer(SubjectSerializer):
    listings = ListingSerializer(many=True, read_only=True, source="in_force_listings")
    restrictions = RestrictionSerializer(many=True, read_only=True, source="restrictions_in_force")

    class Meta(SubjectSerializer.Meta):
        fields = [*SubjectSerializer.Meta.fields, "former_names", "listings", "restrictions"]


class ChangeSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    op = serializers.ChoiceField(choices=["add", "modify", "remove"])
    reason = serializers.CharField()
    subject_id = serializers.IntegerField()
    listing_id = serializers.IntegerField()
    list = serializers.CharField()
    batch_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    data = serializers.DictField(help_text="The listing as published after the change")  # type: ignore[assignment]


class ChangePageSerializer(serializers.Serializer):
    items = ChangeSerializer(many=True)
    next_after = serializers.IntegerField(help_text="Pass as `after` to read on")
    data_version = serializers.IntegerField(help_text="The latest sequence number in the feed")


class ScreenQuerySerializer(serializers.Serializer):
    id = serializers.CharField(required=False, allow_blank=True, max_length=100)
    name = serializers.CharField(required=False, allow_blank=True, max_length=300)
    identifier = serializers.CharField(required=False, allow_blank=True, max_length=40)
    subject_type = serializers.ChoiceField(choices=SubjectType.choices, required=False, allow_blank=True)
    region = serializers.RegexField(r"^\d{2,6}$", required=False, allow_blank=True)

    def validate(self, attrs: dict) -> dict:
        if not (attrs.get("name", "").strip() or attrs.get("identifier", "").strip()):
            raise serializers.ValidationError("give a name or an identifier")
        return attrs


class ScreenRequestSerializer(serializers.Serializer):
    queries = ScreenQuerySerializer(many=True, max_length=settings.XY_SCREEN_MAX_QUERIES, min_length=1)  # type: ignore[call-arg]
    threshold = serializers.FloatField(required=False, min_value=0.0, max_value=1.0, default=0.7)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=50, default=10)


class ScreenListingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    list = serializers.CharField()
    kind = serializers.CharField()
    agency = serializers.CharField()
    reference = serializers.CharField()
    status = serializers.CharField()
    decided_on = serializers.DateField(allow_null=True)
    expires_on = serializers.DateField(allow_null=True)


class ScreenRestrictionSerializer(serializers.Serializer):
    measure = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    listing_id = serializers.IntegerField()
    starts_on = serializers.DateField(allow_null=True)
    until = serializers.DateField(allow_null=True)


class CandidateSerializer(serializers.Serializer):
    subject_id = serializers.IntegerField()
    name = serializers.CharField()
    identifier = serializers.CharField()
    subject_type = serializers.CharField()
    region_code = serializers.CharField()
    score = serializers.FloatField()
    matched = serializers.ListField(child=serializers.CharField())
    listings = ScreenListingSerializer(many=True)
    restrictions = ScreenRestrictionSerializer(many=True)


class ScreenResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.CharField(allow_null=True)
    candidates = CandidateSerializer(many=True)


class ScreenResponseSerializer(serializers.Serializer):
    data_version = serializers.IntegerField()
    threshold = serializers.FloatField()
    results = ScreenResultSerializer(many=True)


class CheckQuerySerializer(serializers.Serializer):
    identifier = serializers.CharField(required=False, max_length=40)
    subject = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    measure = serializers.CharField(required=False, max_length=64)

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("identifier") and not attrs.get("subject"):
            raise serializers.ValidationError("give an identifier or a subject id")
        return attrs


class CheckListingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    list = serializers.CharField()
    list_name = serializers.CharField()
    agency = serializers.CharField()
    reference = serializers.CharField()
    status = serializers.CharField()
    decided_on = serializers.DateField(allow_null=True)
    expires_on = serializers.DateField(allow_null=True)
    legal_basis = serializers.JSONField()


class CheckMeasureSerializer(serializers.Serializer):
    measure = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    legal_basis = serializers.JSONField()
    listing_id = serializers.IntegerField()
    starts_on = serializers.DateField()
    until = serializers.DateField(allow_null=True)


class CheckResponseSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=["allowed", "restricted"])
    allowed = serializers.BooleanField()
    until = serializers.DateField(
        allow_null=True, help_text="Last day of the latest restriction; null: open-ended"
    )
    subject = SubjectSerializer(allow_null=True)
    measure = serializers.CharField(allow_null=True)
    restrictions = CheckMeasureSerializer(many=True)
    incentives = CheckMeasureSerializer(many=True)
    listings = CheckListingSerializer(many=True)
    data_version = serializers.IntegerField()


class CheckCountsQuerySerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Default: 30 days ago")
    until = serializers.DateTimeField(required=False)


class CheckCountSerializer(serializers.Serializer):
    measure = serializers.CharField()
    checks = serializers.IntegerField()
    restricted = serializers.IntegerField()


class ExportSerializer(serializers.ModelSerializer):
    list = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = ["list", "format", "seq", "rows", "sha256", "size", "created_at", "url"]

    def get_list(self, obj: Export) -> str:
        return obj.credit_list.code if obj.credit_list else "all"

    def get_url(self, obj: Export) -> str:
        return f"/api/v1/exports/{self.get_list(obj)}.{obj.format}"


class WatchItemSerializer(serializers.ModelSerializer):
    identifier = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=40)
    name = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=300)

    class Meta:
        model = WatchItem
        fields = ["id", "identifier", "name", "label", "identifier_display", "normalized_name"]
        read_only_fields = ["id", "identifier_display", "normalized_name"]

    def validate(self, attrs: dict) -> dict:
        if not (attrs.get("identifier", "").strip() or attrs.get("name", "").strip()):
            raise serializers.ValidationError("give an identifier or a name")
        return attrs


class WatchlistSerializer(serializers.ModelSerializer):
    items = WatchItemSerializer(many=True, max_length=10_000)  # type: ignore[call-arg]

    class Meta:
        model = Watchlist
        fields = ["id", "name", "items", "created_at"]
        read_only_fields = ["id", "created_at"]


class WebhookSerializer(serializers.ModelSerializer):
    watchlist = serializers.PrimaryKeyRelatedField(queryset=Watchlist.objects.all())

    class Meta:
        model = Webhook
        fields = ["id", "url", "watchlist", "is_active", "cursor_seq", "created_at"]
        read_only_fields = ["id", "cursor_seq", "created_at"]


class WebhookCreatedSerializer(WebhookSerializer):
    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "first_seq",
            "last_seq",
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "response_code",
            "last_error",
            "log",
            "created_at",
            "delivered_at",
        ]


class BatchPushSerializer(serializers.Serializer):
    file = serializers.FileField()
    mode = serializers.ChoiceField(choices=["snapshot", "incremental"], default="incremental")
    file_format = serializers.ChoiceField(choices=["csv", "xlsx", "xls", "json"], required=False)


class BatchStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    list = serializers.CharField(source="credit_list.code")
    status = serializers.CharField()
    mode = serializers.CharField()
    original_filename = serializers.CharField()
    sha256 = serializers.CharField()
    counts = serializers.DictField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
