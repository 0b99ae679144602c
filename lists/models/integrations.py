"""What integrators keep with us: request logs, watchlists, webhooks and their deliveries, exports."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from agencies.models import ApiKey

from .catalogue import CreditList, Measure
from .subjects import Subject


class ApiRequestLog(models.Model):
    """One screening or check request: who asked what, on which data version, with how many results.

    The query summary never holds a full personal ID number, only its masked form.
    """

    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    endpoint = models.CharField(max_length=32)
    query = models.JSONField(default=dict, blank=True)
    measure = models.ForeignKey(Measure, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    subject = models.ForeignKey(Subject, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    data_version = models.BigIntegerField(default=0)
    results_count = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=16, blank=True, help_text="allowed / restricted for checks")

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["measure", "at"]), models.Index(fields=["endpoint", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.endpoint}"


class Watchlist(models.Model):
    """An integrator's set of identifiers and names it wants to hear about."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="watchlists")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class WatchItem(models.Model):
    """One watched identifier (as its lookup key: USCC, org code, or a person's keyed hash) or name."""

    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="items")
    identifier_key = models.CharField(max_length=64, blank=True, db_index=True)
    identifier_display = models.CharField(max_length=32, blank=True, help_text="Masked for persons")
    normalized_name = models.CharField(max_length=400, blank=True, db_index=True)
    label = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(identifier_key="") | ~Q(normalized_name=""), name="watchitem_has_key_or_name"
            )
        ]

    def __str__(self) -> str:
        return self.identifier_display or self.normalized_name


class Webhook(models.Model):
    """A URL that receives signed deliveries for changes touching a watchlist's subjects."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="webhooks")
    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    # The secret must be usable to sign, so it is stored; it is shown to the integrator once.
    secret = models.CharField(max_length=80)
    is_active = models.BooleanField(default=True)
    cursor_seq = models.BigIntegerField(default=0, help_text="Last change-feed entry already considered")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One signed POST of the changes that touched watched subjects, with its attempts."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Gave up"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    body = models.TextField(help_text="The exact JSON body that is signed and sent")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    log = models.JSONField(default=list, blank=True, help_text="One entry per attempt")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="webhookdelivery_due"
            )
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id}:{self.first_seq}-{self.last_seq} {self.status}"


class Export(models.Model):
    """One bulk export file of the in-force listings of one list (or all lists) at one data version."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        JSONL = "jsonl", "JSON Lines"

    credit_list = models.ForeignKey(
        CreditList, null=True, blank=True, on_delete=models.CASCADE, related_name="exports"
    )
    format = models.CharField(max_length=5, choices=Format.choices)
    seq = models.BigIntegerField(help_text="The change-feed sequence number the export reflects")
    rows = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to="exports/%Y/%m/")
    size = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-seq", "-id"]
        indexes = [models.Index(fields=["credit_list", "format", "seq"])]

    def __str__(self) -> str:
        return f"{self.credit_list.code if self.credit_list else 'all'}@{self.seq}.{self.format}"
