"""Credit lists and the published measure catalogue."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models

from agencies.models import Agency


class SubjectType(models.TextChoices):
    LEGAL_PERSON = "legal_person", "法人 Legal person"
    UNINCORPORATED_ORG = "unincorporated_org", "非法人组织 Unincorporated organisation"
    NATURAL_PERSON = "natural_person", "自然人 Natural person"
    INDIVIDUAL_BUSINESS = "individual_business", "个体工商户 Individual business"
    FARMER_COOPERATIVE = "farmer_cooperative", "农民专业合作社 Farmer cooperative"
    SOCIAL_ORGANIZATION = "social_organization", "社会组织 Social organisation"
    PUBLIC_INSTITUTION = "public_institution", "事业单位 Public institution"
    PROCUREMENT_AGENCY = "procurement_agency", "采购代理机构 Procurement agency"
    LEGAL_PERSON_OFFICERS = "legal_person_officers", "法定代表人等 Officers of a legal person"


PERSON_TYPES = {SubjectType.NATURAL_PERSON, SubjectType.LEGAL_PERSON_OFFICERS}


class CreditListQuerySet(models.QuerySet["CreditList"]):
    def public(self) -> CreditListQuerySet:
        """Return the lists shown on the public site."""
        return self.filter(is_public=True)

    def for_agencies(self, agencies: models.QuerySet[Agency]) -> CreditListQuerySet:
        """Return the lists owned by the given agencies."""
        return self.filter(agency__in=agencies)


class CreditList(models.Model):
    """One agency-owned database: a blacklist, redlist, register, or penalty/licence records."""

    class Kind(models.TextChoices):
        BLACKLIST = "blacklist", "黑名单 Blacklist"
        REDLIST = "redlist", "红名单 Redlist"
        REGISTER = "register", "名录 Register"
        PENALTY = "penalty", "行政处罚 Penalty"
        LICENCE = "licence", "行政许可 Licence"

    code = models.SlugField(max_length=64, unique=True)
    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="credit_lists")
    name_zh = models.CharField(max_length=200)
    name_en = models.CharField(max_length=300, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    subject_types = ArrayField(models.CharField(max_length=32, choices=SubjectType.choices), default=list)
    legal_basis = models.JSONField(
        default=list, help_text="Citations of the laws and documents behind the list"
    )
    entry_criteria = models.TextField(blank=True)
    publication_period = models.TextField(blank=True, help_text="The rule as published, in words")
    period_rule = models.JSONField(
        default=dict,
        help_text='Machine rule: {"kind": "fixed", "months": 36} | {"kind": "until_removed"} | '
        '{"kind": "tiered", "tiers": {"minor": 3, "general": 12, "serious": 36}}',
    )
    removal_rule = models.TextField(blank=True)
    is_repairable = models.BooleanField(
        default=True, help_text="Court lists end by the court's removal, not repair"
    )
    repair_min_months = models.JSONField(
        default=dict,
        blank=True,
        help_text='Minimum months listed before repair, by severity: {"serious": 12}',
    )
    objection_days = models.PositiveSmallIntegerField(
        default=5, help_text="Working days to answer an objection"
    )
    repair_days = models.PositiveSmallIntegerField(default=3, help_text="Working days to decide a repair")
    marks_disputed = models.BooleanField(
        default=True, help_text="Show 'under review' while an objection is open"
    )
    field_schema = models.JSONField(
        default=dict, blank=True, help_text="The list's own fields beyond the core ones"
    )
    confidence = models.CharField(max_length=200, blank=True)
    sources = models.JSONField(default=list, blank=True)
    is_public = models.BooleanField(default=True)
    last_published_at = models.DateTimeField(null=True, blank=True)
    last_snapshot_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the latest published snapshot confirmed every listing it left in force",
    )
    last_synced_at = models.DateTimeField(null=True, blank=True)

    objects = CreditListQuerySet.as_manager()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name_zh

    @property
    def is_incentive(self) -> bool:
        return self.kind == self.Kind.REDLIST


class CatalogueEdition(models.Model):
    """One loaded edition of the measure catalogue."""

    code = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=300, blank=True)
    source_sha256 = models.CharField(max_length=64)
    loaded_at = models.DateTimeField(auto_now_add=True)
    is_current = models.BooleanField(default=False)

    class Meta:
        ordering = ["-loaded_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_current"], condition=models.Q(is_current=True), name="one_current_edition"
            ),
        ]

    def __str__(self) -> str:
        return self.code


class MeasureQuerySet(models.QuerySet["Measure"]):
    def current(self) -> MeasureQuerySet:
        """Return the measures of the edition in force."""
        return self.filter(edition__is_current=True)


class Measure(models.Model):
    """One row of the published catalogue of punishment and incentive measures."""

    class Category(models.TextChoices):
        RIGHTS_REDUCING = "A_rights_reducing", "A 减损权益或增加义务 Rights-reducing"
        MANAGEMENT = "B_management", "B 管理措施 Management"
        MARKET = "C_market_autonomous", "C 市场自主 Market-autonomous"
        INCENTIVE = "incentive", "守信激励 Incentive"

    class Kind(models.TextChoices):
        PUNISHMENT = "punishment", "惩戒 Punishment"
        INCENTIVE = "incentive", "激励 Incentive"

    edition = models.ForeignKey(CatalogueEdition, on_delete=models.PROTECT, related_name="measures")
    code = models.CharField(max_length=64)
    name_zh = models.CharField(max_length=300)
    name_en = models.CharField(max_length=400, blank=True)
    category = models.CharField(max_length=32, choices=Category.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    implementing_agency = models.CharField(max_length=300, blank=True)
    legal_basis = models.JSONField(default=list)
    triggered_by = models.ManyToManyField(CreditList, related_name="measures", blank=True)
    subject_types = ArrayField(
        models.CharField(max_length=32, choices=SubjectType.choices),
        default=list,
        blank=True,
        help_text="Empty: every subject type the triggering list covers",
    )
    duration_months = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Empty: in force for as long as the listing"
    )
    applies_to_note = models.TextField(blank=True)
    confidence = models.CharField(max_length=200, blank=True)
    sources = models.JSONField(default=list, blank=True)

    objects = MeasureQuerySet.as_manager()

    class Meta:
        ordering = ["edition", "code"]
        constraints = [models.UniqueConstraint(fields=["edition", "code"], name="measure_unique_per_edition")]

    def __str__(self) -> str:
        return f"{self.code} {self.name_zh}"
