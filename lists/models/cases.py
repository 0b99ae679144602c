"""Due-process cases: objections to a listing and applications for credit repair."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from pathlib import PurePath

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from agencies.models import Agency

from .listings import Listing

# No 0/O, 1/I/L: the code is read off a screen and typed back in by hand.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


class Holiday(models.Model):
    """One day of the working-day calendar that differs from the Monday–Friday rule.

    A public holiday is a day off; a make-up working day (调休) is a weekend day worked.
    """

    date = models.DateField(unique=True)
    name = models.CharField(max_length=100)
    is_working_day = models.BooleanField(
        default=False, help_text="Ticked: a make-up working day (调休) on a weekend"
    )

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class CaseQuerySet(models.QuerySet["Case"]):
    def open(self) -> CaseQuerySet:
        """Return cases not yet decided."""
        return self.exclude(status=Case.Status.DECIDED)

    def for_agencies(self, agencies: models.QuerySet[Agency]) -> CaseQuerySet:
        """Return the cases handled by the given agencies."""
        return self.filter(agency__in=agencies)

    def overdue(self, today: dt.date) -> CaseQuerySet:
        """Return open cases whose deadline has passed."""
        return self.open().filter(due_on__lt=today)


class Case(models.Model):
    """One objection to a listing or one application to repair it, with its deadline."""

    class Kind(models.TextChoices):
        OBJECTION = "objection", "异议 Objection"
        REPAIR = "repair", "信用修复 Repair"

    class Status(models.TextChoices):
        FILED = "filed", "已提交 Filed"
        UNDER_REVIEW = "under_review", "审查中 Under review"
        DECIDED = "decided", "已决定 Decided"

    class Decision(models.TextChoices):
        NONE = "", "—"
        UPHOLD = "uphold", "维持 Record upheld"
        CORRECT = "correct", "更正 Record corrected"
        REJECT = "reject", "驳回 Objection rejected"
        APPROVE = "approve", "准予修复 Repair approved"
        REFUSE = "refuse", "不予修复 Repair refused"

    class Field(models.TextChoices):
        NONE = "", "—"
        SUBJECT = "subject", "主体 The subject (not me / wrong identity)"
        REFERENCE = "reference", "文书号 Decision number"
        REASON = "reason", "事由 Reason"
        DECIDED_ON = "decided_on", "决定日期 Decision date"
        EXPIRES_ON = "expires_on", "公示截止 End of publication"
        SEVERITY = "severity", "严重程度 Severity"
        OTHER = "other", "其他 Other"

    OBJECTION_DECISIONS = (Decision.UPHOLD, Decision.CORRECT, Decision.REJECT)
    REPAIR_DECISIONS = (Decision.APPROVE, Decision.REFUSE)
    NUMBER_PREFIX: dict[str, str] = {Kind.OBJECTION: "YY", Kind.REPAIR: "XF"}

    kind = models.CharField(max_length=12, choices=Kind.choices)
    number = models.CharField(max_length=32, unique=True, help_text="e.g. YY-2026-000123")
    access_code_hash = models.CharField(max_length=64)
    listing = models.ForeignKey(Listing, on_delete=models.PROTECT, related_name="cases")
    agency = models.ForeignKey(
        Agency, on_delete=models.PROTECT, related_name="cases", help_text="The agency handling the case"
    )
    applicant_name = models.CharField(max_length=200)
    applicant_email = models.EmailField()
    field = models.CharField(max_length=16, choices=Field.choices, blank=True, default="")
    grounds = models.TextField(
        help_text="Objection: why the record is wrong. Repair: how the obligation was met"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FILED)
    decision = models.CharField(max_length=8, choices=Decision.choices, blank=True, default="")
    decision_reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    filed_at = models.DateTimeField()
    due_on = models.DateField(help_text="Answer due by the end of this working day")
    escalated_at = models.DateTimeField(null=True, blank=True)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["due_on", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="decided", decided_at__isnull=False) & ~Q(decision="")
                | ~Q(status="decided") & Q(decision=""),
                name="case_decided_has_decision",
            ),
            models.CheckConstraint(
                condition=Q(kind="objection", decision__in=["", "uphold", "correct", "reject"])
                | Q(kind="repair", decision__in=["", "approve", "refuse"]),
                name="case_decision_fits_kind",
            ),
        ]
        indexes = [models.Index(fields=["agency", "status", "due_on"])]

    def __str__(self) -> str:
        return self.number

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.DECIDED

    def is_overdue(self, today: dt.date | None = None) -> bool:
        """Return whether the case is open past its deadline."""
        return self.is_open and self.due_on < (today or timezone.localdate())

    @staticmethod
    def new_access_code() -> str:
        """Return a fresh access code; it is shown once to the applicant and never stored."""
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
        return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"

    @staticmethod
    def hash_access_code(code: str) -> str:
        """Return the stored hash of an access code, ignoring case, spaces and dashes."""
        normalized = code.upper().replace("-", "").replace(" ", "")
        return hashlib.sha256(normalized.encode()).hexdigest()

    def check_access_code(self, code: str) -> bool:
        """Return whether the presented access code opens this case (constant time)."""
        return hmac.compare_digest(self.access_code_hash, self.hash_access_code(code))


def _evidence_path(instance: Evidence, filename: str) -> str:
    # The stored name is random: the applicant's file name never reaches the file system.
    suffix = PurePath(filename).suffix.lower()
    return f"evidence/{instance.case_id}/{uuid.uuid4().hex}{suffix}"


class Evidence(models.Model):
    """One document attached to a case, stored privately and served only through a checked view."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="evidence")
    file = models.FileField(upload_to=_evidence_path, max_length=200)
    original_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_at = models.DateTimeField(auto_now_add=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty: the applicant",
    )

    class Meta:
        ordering = ["uploaded_at", "pk"]
        verbose_name_plural = "evidence"

    def __str__(self) -> str:
        return self.original_name


class CaseEvent(models.Model):
    """One step in a case's history, shown to the applicant and the agency."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=32)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "pk"]

    LABELS = {
        "filed": "已提交 Filed",
        "evidence_added": "补充材料 Document added",
        "under_review": "开始审查 Review started",
        "escalated": "逾期上报 Escalated as overdue",
        "decided_uphold": "维持 Record upheld",
        "decided_correct": "更正 Record corrected",
        "decided_reject": "驳回 Objection rejected",
        "decided_approve": "准予修复 Repair approved",
        "decided_refuse": "不予修复 Repair refused",
    }

    def __str__(self) -> str:
        return f"{self.case} {self.action}"

    @property
    def label(self) -> str:
        return self.LABELS.get(self.action, self.action)
