"""Batches: one upload, push or sync run, with the raw file and every row's outcome."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from agencies.models import ApiKey

from .catalogue import CreditList


class BatchQuerySet(models.QuerySet["Batch"]):
    def for_lists(self, lists: models.QuerySet[CreditList]) -> BatchQuerySet:
        """Return batches of the given lists."""
        return self.filter(credit_list__in=lists)


class Batch(models.Model):
    """One upload or one sync run of one list."""

    class Origin(models.TextChoices):
        UPLOAD = "upload", "Upload"
        API = "api", "API push"
        SYNC = "sync", "Sync"
        COMMAND = "command", "Command line"
        DEMO = "demo", "Demo data"

    class Mode(models.TextChoices):
        SNAPSHOT = "snapshot", "Full snapshot"
        INCREMENTAL = "incremental", "Incremental"

    class Status(models.TextChoices):
        # PUBLISHING and ROLLING_BACK: approved, and queued for a task (services/batches/queued.py).
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Validating"
        NEEDS_MAPPING = "needs_mapping", "Column mapping to confirm"
        READY = "ready", "Ready for approval"
        PUBLISHING = "publishing", "Publishing"
        PUBLISHED = "published", "Published"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"
        ROLLING_BACK = "rolling_back", "Rolling back"
        ROLLED_BACK = "rolled_back", "Rolled back"

    credit_list = models.ForeignKey(CreditList, on_delete=models.PROTECT, related_name="batches")
    origin = models.CharField(max_length=10, choices=Origin.choices)
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.INCREMENTAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    raw_file = models.FileField(upload_to="batches/%Y/%m/", blank=True)
    original_filename = models.CharField(max_length=255, blank=True)
    file_size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    file_format = models.CharField(max_length=12, blank=True)
    encoding = models.CharField(max_length=20, blank=True)
    header_mapping = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    skip_invalid = models.BooleanField(default=False, help_text="Publish without the invalid rows")
    progress = models.PositiveSmallIntegerField(default=0)
    progress_note = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approval_waived_by = models.CharField(
        max_length=200,
        blank=True,
        help_text="Trusted source or operator command that published without a second person",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    rolled_back_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source = models.ForeignKey(
        "lists.Source", null=True, blank=True, on_delete=models.SET_NULL, related_name="batches"
    )
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its publication or rollback was queued"
    )
    first_seq = models.BigIntegerField(null=True, blank=True, help_text="First change-feed entry it wrote")
    last_seq = models.BigIntegerField(null=True, blank=True)

    objects = BatchQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"
        constraints = [
            # Four-eyes: the person who approves is never the person who uploaded.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True)
                | Q(uploaded_by__isnull=True)
                | ~Q(approved_by=F("uploaded_by")),
                name="batch_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.credit_list.code} {self.status}"


class BatchRow(models.Model):
    """One row of a batch: what was read, what was wrong with it, what publishing does with it."""

    class Outcome(models.TextChoices):
        VALID = "valid", "Valid"
        WARNING = "warning", "Valid with warnings"
        INVALID = "invalid", "Invalid"

    class Action(models.TextChoices):
        ADD = "add", "Added"
        CHANGE = "change", "Changed"
        REMOVE = "remove", "Removed"
        UNCHANGED = "unchanged", "Unchanged"
        NONE = "", "—"

    # No index of its own: batchrow_unique_line (batch, line_no) serves every lookup by batch,
    # and each index is paid on every one of a million staged rows. No database constraint:
    # rows are only written by the batch services for the batch they hold, and the deferred
    # check of a million rows made the COMMIT of a big file's rows take ~5 s. Django still
    # cascades a deleted batch to its rows.
    batch = models.ForeignKey(
        Batch, on_delete=models.CASCADE, related_name="rows", db_index=False, db_constraint=False
    )
    line_no = models.PositiveIntegerField()
    raw = models.JSONField(default=dict)
    data = models.JSONField(default=dict)
    errors = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    action = models.CharField(max_length=10, choices=Action.choices, blank=True, default="")
    source_key = models.CharField(max_length=300, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    diff = models.JSONField(default=dict, blank=True)
    # No database constraint: rows are written set-based from a join with lists_listing (so
    # the id exists) and listings are never deleted; the constraint only cost a check per row
    # when a million-row file is staged or re-staged. No index either: rows are only ever read
    # by batch.
    listing = models.ForeignKey(
        "lists.Listing",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )

    class Meta:
        ordering = ["batch", "line_no"]
        constraints = [models.UniqueConstraint(fields=["batch", "line_no"], name="batchrow_unique_line")]
        # Partial: a million-row file is mostly valid rows, and a re-upload mostly unchanged ones,
        # which these lookups never ask for (they scan batchrow_unique_line instead).
        indexes = [
            models.Index(
                fields=["batch", "line_no"], condition=~Q(outcome="valid"), name="batchrow_problems"
            ),
            models.Index(
                fields=["batch", "action"],
                condition=Q(action__in=["change", "remove"]),
                name="batchrow_touched",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.line_no}"

    @property
    def field_changes(self) -> list[tuple[str, object, object]]:
        """Return what publishing changes, as (field, published value, new value)."""
        return [
            (name, change[0], change[1])
            for name, change in self.diff.items()
            if name != "before" and isinstance(change, list) and len(change) == 2
        ]
