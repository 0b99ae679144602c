"""The search parameters of subjects, shared by the HTML search and the API."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from lists.models import CreditList, Listing, Subject, SubjectType

_CODE = re.compile(r"^[\w\-]{1,64}$")
STATUS_CHOICES = [
    ("active", _("In force")),
    ("expired", _("Expired")),
    ("repaired", _("Repaired")),
    ("all", _("All")),
]
KIND_CHOICES = [
    (CreditList.Kind.BLACKLIST.value, _("Blacklist")),
    (CreditList.Kind.REDLIST.value, _("Redlist")),
    (CreditList.Kind.REGISTER.value, _("Register")),
    (CreditList.Kind.PENALTY.value, _("Penalty")),
    (CreditList.Kind.LICENCE.value, _("Licence")),
]
_STATUS_FILTER = {
    "active": Q(listings__status__in=Listing.IN_FORCE),
    "expired": Q(listings__status=Listing.Status.EXPIRED),
    "repaired": Q(listings__status=Listing.Status.REPAIRED),
    "all": Q(),
}


class CodeMultipleChoiceField(forms.MultipleChoiceField):
    """Several codes (list, agency, region), checked by shape rather than against the database."""

    def valid_value(self, value: Any) -> bool:
        return isinstance(value, str) and bool(_CODE.match(value))


class CodeFilter(django_filters.MultipleChoiceFilter):
    field_class = CodeMultipleChoiceField


class SubjectFilterSet(django_filters.FilterSet):
    """Filter subjects by their listings' list, agency, kind, status, and by type and region."""

    q = django_filters.CharFilter(method="filter_nothing", max_length=200, label=_("Name or identifier"))
    list = CodeFilter(field_name="listings__credit_list__code", label=_("List"))
    agency = CodeFilter(field_name="listings__credit_list__agency__code", label=_("Agency"))
    kind = django_filters.MultipleChoiceFilter(
        field_name="listings__credit_list__kind", choices=KIND_CHOICES, label=_("Kind")
    )
    subject_type = django_filters.MultipleChoiceFilter(
        field_name="subject_type", choices=SubjectType.choices, label=_("Subject type")
    )
    region = CodeFilter(method="filter_region", label=_("Region"))
    status = django_filters.ChoiceFilter(
        method="filter_status", choices=STATUS_CHOICES, empty_label=None, label=_("Status")
    )

    class Meta:
        model = Subject
        fields: list[str] = []

    def filter_nothing(self, queryset: QuerySet[Subject], name: str, value: str) -> QuerySet[Subject]:
        """Leave name matching to lists.search (the API and the page both call it)."""
        return queryset

    def filter_region(
        self, queryset: QuerySet[Subject], name: str, value: Sequence[str]
    ) -> QuerySet[Subject]:
        """Match a province (2 digits), prefecture (4) or county (6) by region-code prefix."""
        match = Q()
        for code in value:
            match |= Q(region_code__startswith=code)
        return queryset.filter(match)

    def filter_status(self, queryset: QuerySet[Subject], name: str, value: str) -> QuerySet[Subject]:
        """Keep subjects with a listing in the given state."""
        return queryset.filter(_STATUS_FILTER.get(value or "active", Q())).distinct()

    def cleaned(self, name: str) -> Any:
        """Return one cleaned parameter, or its empty value when that parameter is invalid."""
        self.is_valid()  # cleans the form; cleaned_data keeps the parameters that passed
        data = self.form.cleaned_data
        return data.get(name) or ("" if name in {"q", "status"} else [])
