"""The append-only change feed that integrators follow."""

from __future__ import annotations

from django.db import models

from .catalogue import CreditList
from .listings import Listing
from .subjects import Subject


class ChangeQuerySet(models.QuerySet["Change"]):
    def after(self, seq: int) -> ChangeQuerySet:
        """Return changes with a sequence number above `seq`, oldest first."""
        return self.filter(seq__gt=seq).order_by("seq")


class Change(models.Model):
    """One entry of the change feed; its sequence number is the data version it leads to.

    Rows are only ever inserted by lists.services.feed, which serialises writers so that
    sequence numbers become visible in order (a reader never sees N+1 before N).
    """

    class Op(models.TextChoices):
        ADD = "add", "Added"
        MODIFY = "modify", "Modified"
        REMOVE = "remove", "Removed"

    # No database constraints on the foreign keys: the feed is append-only and its only writer
    # (lists.services.feed) takes the ids from rows it has just written in the same
    # transaction, while a million deferred FK checks made a big publication's COMMIT take
    # ~95 s. Subjects, listings, lists and batches are never deleted while changes point at
    # them (they are PROTECTed everywhere else); on_delete keeps Django's side of that promise.
    seq = models.BigAutoField(primary_key=True)
    op = models.CharField(max_length=8, choices=Op.choices)
    reason = models.CharField(max_length=32, help_text="publish, expire, repair, rollback, correct, ...")
    # subject and credit_list are served by the (…, seq) indexes below; nothing looks changes
    # up by listing alone (a subject's history filters on subject first).
    subject = models.ForeignKey(
        Subject, on_delete=models.PROTECT, related_name="changes", db_constraint=False, db_index=False
    )
    listing = models.ForeignKey(
        Listing, on_delete=models.PROTECT, related_name="changes", db_constraint=False, db_index=False
    )
    credit_list = models.ForeignKey(
        CreditList, on_delete=models.PROTECT, related_name="changes", db_constraint=False, db_index=False
    )
    # No index on batch or created_at: nothing searches by them (a batch's changes are the
    # seq range Batch.first_seq..last_seq), and each costs an entry per change written.
    batch = models.ForeignKey(
        "lists.Batch",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="changes",
        db_constraint=False,
        db_index=False,
    )
    # A publication's added listings keep their data in their batch rows, which are kept for
    # good: writing each one's document again here took a third of a big publication's time.
    # Read the data through lists.services.feed (feed_data_sql(), with_data()), never directly.
    data = models.JSONField(
        null=True, blank=True, help_text="The listing as published after the change; NULL: see `row`"
    )
    row = models.ForeignKey(
        "lists.BatchRow",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
        help_text="For a listing added by a batch: the row it was published from",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ChangeQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["credit_list", "seq"]), models.Index(fields=["subject", "seq"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(data__isnull=False) | models.Q(row__isnull=False), name="change_has_data"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.op} {self.listing_id}"
