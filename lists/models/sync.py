"""Sources: agency-owned feeds that a list is synced from on a schedule."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import DurationField, ExpressionWrapper, F, Q, Value
from django.utils import timezone

from .catalogue import CreditList

# How many missed runs make a source stale: one late run is normal jitter, two is a problem.
STALE_AFTER_RUNS = 2

env_var_name = RegexValidator(r"^[A-Z][A-Z0-9_]{0,99}$", "Use an environment variable name like XY_TOKEN.")
header_name = RegexValidator(r"^[A-Za-z0-9-]{1,100}$", "Use an HTTP header name like Authorization.")


def schedule_interval(field: str, runs: int = 1) -> ExpressionWrapper:
    """Return `runs` × the source's interval as an SQL interval expression."""
    return ExpressionWrapper(F(field) * Value(dt.timedelta(minutes=runs)), output_field=DurationField())


class SourceQuerySet(models.QuerySet["Source"]):
    def enabled(self) -> SourceQuerySet:
        """Return sources that beat may run."""
        return self.filter(is_enabled=True)

    def due(self, now: dt.datetime) -> SourceQuerySet:
        """Return enabled sources whose next scheduled run has come."""
        return self.enabled().filter(Q(next_sync_at__isnull=True) | Q(next_sync_at__lte=now))

    def overdue(self, now: dt.datetime) -> SourceQuerySet:
        """Return enabled sources with no successful sync within STALE_AFTER_RUNS intervals."""
        window = schedule_interval("schedule_minutes", STALE_AFTER_RUNS)
        return self.enabled().filter(
            Q(last_success_at__isnull=True) | Q(last_success_at__lt=Value(now) - window)
        )

    def unhealthy(self) -> SourceQuerySet:
        """Return sources whose last runs failed."""
        return self.exclude(health=Source.Health.HEALTHY)


class Source(models.Model):
    """A pull feed over HTTP(S) that one list is synced from; edited by the list's agency admins.

    The secret for the auth header never lives in the database: `auth_env_var` names the
    environment variable that holds it on the worker.
    """

    class Format(models.TextChoices):
        JSON = "json", "JSON pages"
        CSV = "csv", "CSV"
        JSONL = "jsonl", "JSON Lines"

    class Mode(models.TextChoices):
        SNAPSHOT = "snapshot", "Full snapshot"
        INCREMENTAL = "incremental", "Incremental (updated since)"

    class Health(models.TextChoices):
        HEALTHY = "healthy", "Healthy"
        FAILING = "failing", "Failing (retrying)"
        UNHEALTHY = "unhealthy", "Unhealthy"

    credit_list = models.OneToOneField(CreditList, on_delete=models.PROTECT, related_name="source")
    url = models.URLField(max_length=1000, help_text="http(s) only")
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.JSON)
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.SNAPSHOT)
    cursor_param = models.CharField(
        max_length=64, blank=True, default="updated_since", help_text="Query parameter of incremental feeds"
    )
    cursor = models.CharField(max_length=200, blank=True, help_text="Where the next incremental run starts")
    auth_header = models.CharField(max_length=100, blank=True, validators=[header_name])
    auth_env_var = models.CharField(
        max_length=100,
        blank=True,
        validators=[env_var_name],
        help_text="Name of the environment variable holding the header's value (never the secret)",
    )
    timeout_seconds = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(600)]
    )
    max_pages = models.PositiveIntegerField(default=200, help_text="A feed with more pages fails the run")
    schedule_minutes = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1)], help_text="Run every N minutes"
    )
    max_shrink_ratio = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Safety stop: hold a snapshot that would remove more than this share of the list",
    )
    is_trusted = models.BooleanField(default=False, help_text="Runs publish without a second person")
    trusted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    trusted_at = models.DateTimeField(null=True, blank=True)
    is_enabled = models.BooleanField(default=True)
    is_synthetic = models.BooleanField(
        default=False, help_text="A demo feed: subjects its runs create are flagged as demo data"
    )
    health = models.CharField(max_length=10, choices=Health.choices, default=Health.HEALTHY)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_sync_at = models.DateTimeField(null=True, blank=True, help_text="Empty: due now")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    objects = SourceQuerySet.as_manager()

    class Meta:
        ordering = ["credit_list__code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_trusted=False) | Q(trusted_by__isnull=False, trusted_at__isnull=False),
                name="source_trust_is_attributed",
            ),
            models.CheckConstraint(
                condition=Q(max_shrink_ratio__gte=0) & Q(max_shrink_ratio__lte=1),
                name="source_shrink_ratio_is_a_share",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.credit_list.code} ← {self.url}"

    @property
    def is_stale(self) -> bool:
        """Return whether no sync succeeded within STALE_AFTER_RUNS intervals."""
        if not self.is_enabled:
            return False
        if self.last_success_at is None:
            return True
        window = dt.timedelta(minutes=self.schedule_minutes * STALE_AFTER_RUNS)
        return self.last_success_at < timezone.now() - window
