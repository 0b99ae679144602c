"""django-filter FilterSets of the API resources."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django import forms
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField

from lists.models import CreditList, Listing, Subject, SubjectType
from lists.models.listings import ListingQuerySet


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time taken as UTC: Python accepts offsets up to ±23:59, PostgreSQL ±15:59."""

    def to_python(self, value: Any) -> dt.datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError as exc:
            raise forms.ValidationError(_("This time is out of range."), code="invalid") from exc


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class ListingFilter(django_filters.FilterSet):
    """Filter listings by list, agency, status, subject and change time."""

    list = django_filters.CharFilter(field_name="credit_list__code")
    agency = django_filters.CharFilter(field_name="credit_list__agency__code")
    status = django_filters.ChoiceFilter(choices=Listing.Status.choices)
    subject = django_filters.NumberFilter(field_name="subject_id", min_value=1, max_value=2**62)
    changed_since = UtcIsoDateTimeFilter(field_name="last_changed_at", lookup_expr="gte")
    decided_since = django_filters.DateFilter(field_name="decided_on", lookup_expr="gte")
    expires_before = django_filters.DateFilter(field_name="expires_on", lookup_expr="lt")

    class Meta:
        model = Listing
        fields = ["list", "agency", "status", "subject", "changed_since", "decided_since", "expires_before"]

    def filter_queryset(self, queryset: ListingQuerySet) -> ListingQuerySet:
        """Filter; a query by list or agency also says "any status", once, for the list indexes."""
        queryset = super().filter_queryset(queryset)
        by_list = self.form.cleaned_data.get("list") or self.form.cleaned_data.get("agency")
        return queryset.of_any_status() if by_list else queryset


class SubjectFilter(django_filters.FilterSet):
    """The query and filters of a subject search."""

    q = django_filters.CharFilter(method="_noop", max_length=200)
    subject_type = django_filters.ChoiceFilter(choices=SubjectType.choices, method="_noop")
    region = django_filters.CharFilter(method="_noop", max_length=6)
    list = django_filters.CharFilter(method="_noop", max_length=64)
    agency = django_filters.CharFilter(method="_noop", max_length=64)
    kind = django_filters.ChoiceFilter(choices=CreditList.Kind.choices, method="_noop")
    status = django_filters.ChoiceFilter(
        choices=[(s, s) for s in ("active", "expired", "repaired", "all")], method="_noop"
    )

    class Meta:
        model = Subject
        fields = ["q", "subject_type", "region", "list", "agency", "kind", "status"]

    def _noop(self, queryset, name, value):  # type: ignore[no-untyped-def]
        return queryset  # the search engine applies these
