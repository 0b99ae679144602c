"""Issued credit reports, kept so that anyone can verify a report's number and content hash."""

from __future__ import annotations

from django.db import models

from .subjects import Subject


class CreditReport(models.Model):
    """One credit report issued for a subject: its number and the hash of what it said."""

    number = models.CharField(max_length=32, unique=True)
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="credit_reports")
    issued_at = models.DateTimeField()
    content_sha256 = models.CharField(max_length=64, help_text="SHA-256 of the report's public records")
    language = models.CharField(max_length=8)

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return self.number
