"""Listings of subjects on credit lists, and the restrictions they bring."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import F, Q

from .catalogue import CreditList, Measure
from .subjects import Subject


def _batch_key() -> models.ForeignKey:
    """A listing's first or last batch.

    No database constraint: batches are never deleted and publishing sets the key to its own
    (locked) batch, while the check cost a deferred trigger per listing at the COMMIT of a big
    publication. No index: a batch's listings are found through its range of the change feed,
    and an index costs an entry for every listing published.
    """
    return models.ForeignKey(
        "lists.Batch",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )


class ListingQuerySet(models.QuerySet["Listing"]):
    def in_force(self) -> ListingQuerySet:
        """Return listings that are published and not ended (active or under review)."""
        return self.filter(status__in=Listing.IN_FORCE)

    def of_any_status(self) -> ListingQuerySet:
        """Spell out "in force or not", which lets a query by list use both partial list indexes."""
        return self.filter(Q(status__in=Listing.IN_FORCE) | ~Q(status__in=Listing.IN_FORCE))

    def for_subject(self, subject: Subject) -> ListingQuerySet:
        """Return the subject's listings."""
        return self.filter(subject=subject)


class Listing(models.Model):
    """One record of a subject on a list, from one official decision."""

    class Status(models.TextChoices):
        ACTIVE = "active", "有效 Active"
        DISPUTED = "disputed", "复核中 Under review"
        EXPIRED = "expired", "已到期 Expired"
        REPAIRED = "repaired", "已修复 Repaired"
        REVOKED = "revoked", "已撤销 Revoked"

    class Severity(models.TextChoices):
        NONE = "", "—"
        MINOR = "minor", "轻微 Minor"
        GENERAL = "general", "一般 General"
        SERIOUS = "serious", "严重 Serious"

    IN_FORCE = (Status.ACTIVE, Status.DISPUTED)

    # Both keys are checked by triggers once per statement (migration 0002), not by a deferred
    # trigger per row, which cost ~14 s at the COMMIT of a million-row publication. No
    # single-column indexes: (subject, status) and the list indexes below serve those lookups.
    subject = models.ForeignKey(
        Subject, on_delete=models.PROTECT, related_name="listings", db_index=False, db_constraint=False
    )
    credit_list = models.ForeignKey(
        CreditList, on_delete=models.PROTECT, related_name="listings", db_index=False, db_constraint=False
    )
    source_key = models.CharField(max_length=300, help_text="Stable key of the source record within the list")
    reference = models.CharField("文书号", max_length=300, blank=True)
    reason = models.TextField(blank=True)
    severity = models.CharField(max_length=8, choices=Severity.choices, blank=True, default="")
    decided_on = models.DateField(null=True, blank=True)
    published_on = models.DateField(null=True, blank=True)
    expires_on = models.DateField(null=True, blank=True, help_text="Empty: until removed")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    extra = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)
    first_batch = _batch_key()
    last_batch = _batch_key()
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(help_text="Last named by a file; see seen_at for snapshots")
    last_changed_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = ListingQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["credit_list", "source_key"],
                condition=Q(status__in=["active", "disputed"]),
                name="listing_one_in_force_per_source_record",
            ),
            models.CheckConstraint(
                condition=Q(expires_on__isnull=True)
                | Q(decided_on__isnull=True)
                | Q(expires_on__gte=F("decided_on")),
                name="listing_expires_after_decision",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "disputed"]) | Q(ended_at__isnull=False),
                name="listing_ended_has_end_time",
            ),
        ]
        indexes = [
            models.Index(fields=["subject", "status"]),
            # A list's listings in force are found by listing_one_in_force_per_source_record,
            # so this one holds only ended listings: a new listing costs one entry fewer (~2 s
            # a million). A query by list and any status says so (ListingQuerySet.of_any_status).
            models.Index(
                fields=["credit_list", "status"],
                condition=~Q(status__in=["active", "disputed"]),
                name="listing_ended_per_list",
            ),
            # Only listings that can expire: most stay until removed, and a NULL entry per
            # listing is a cost paid by every publication (`expires_on < …` implies NOT NULL).
            models.Index(
                fields=["expires_on"],
                condition=Q(status__in=["active", "disputed"], expires_on__isnull=False),
                name="listing_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.credit_list.code}:{self.source_key}"

    @property
    def is_in_force(self) -> bool:
        return self.status in self.IN_FORCE

    @property
    def seen_at(self) -> dt.datetime:
        """Return when a file of the agency last confirmed this listing.

        A snapshot confirms every listing it leaves in force, so publishing one records its time
        on the list rather than rewriting each unchanged listing (a million rows a day for a daily
        sync). A listing it ends keeps the time of the snapshot before.
        """
        snapshot = self.credit_list.last_snapshot_at
        if self.is_in_force and snapshot is not None and snapshot > self.last_seen_at:
            return snapshot
        return self.last_seen_at


class RestrictionQuerySet(models.QuerySet["Restriction"]):
    def in_force(self, on: dt.date | None = None) -> RestrictionQuerySet:
        """Return restrictions in force on the given day (today by default)."""
        on = on or dt.date.today()
        return self.filter(lifted_at__isnull=True, starts_on__lte=on).filter(
            Q(ends_on__isnull=True) | Q(ends_on__gte=on)
        )


class Restriction(models.Model):
    """A measure in force for a subject because of a listing, from one date until another."""

    # The keys are checked by triggers once per statement (migration 0011): a big batch derives
    # millions of restrictions, and three deferred foreign-key checks per row were 60 % of that.
    # Indexes: (listing, measure) below, and restriction_live for a subject's measures in force;
    # nothing reads restrictions by measure or by subject including lifted ones (only Django's
    # PROTECT check would, on deleting a subject or measure, which nothing does: it then scans).
    subject = models.ForeignKey(
        Subject, on_delete=models.PROTECT, related_name="restrictions", db_constraint=False, db_index=False
    )
    listing = models.ForeignKey(
        Listing, on_delete=models.PROTECT, related_name="restrictions", db_constraint=False, db_index=False
    )
    measure = models.ForeignKey(
        Measure, on_delete=models.PROTECT, related_name="restrictions", db_constraint=False, db_index=False
    )
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True, help_text="Empty: for as long as the listing")
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_reason = models.CharField(max_length=32, blank=True)

    objects = RestrictionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["listing", "measure"], name="restriction_once_per_listing_measure"
            ),
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(ends_on__gte=F("starts_on")),
                name="restriction_ends_after_start",
            ),
        ]
        indexes = [
            models.Index(fields=["subject"], condition=Q(lifted_at__isnull=True), name="restriction_live")
        ]

    def __str__(self) -> str:
        return f"{self.measure.code} → {self.subject}"


class PendingRecompute(models.Model):
    """A recompute of restrictions that was committed to but has not yet run.

    A big publication or rollback, and a new catalogue edition, derive their restrictions in a
    task after they commit (minutes for a million listings). While any row is here, checks,
    screening, subject pages and the API derive what is in force from the listings and the
    catalogue (lists.services.measures.in_force_sql), so none answers from the state
    before. The task deletes its row once its restrictions are committed; a full recompute
    (`manage.py apply_measures`) also deletes the rows that were here when it began.
    """

    batch = models.ForeignKey(
        "lists.Batch", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    reason = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.reason} since {self.created_at:%Y-%m-%d %H:%M}"
