"""django-filter FilterSets of the API resources."""

from __future__ import annotations

import django_filters

from lists.models import CreditList, Listing, Subject, SubjectType


class ListingFilter(django_filters.FilterSet):
    """Filter listings by list, agency, status, subject and change time."""

    list = django_filters.CharFilter(field_name="credit_list__code")
    agency = django_filters.CharFilter(field_name="credit_list__agency__code")
    status = django_filters.ChoiceFilter(choices=Listing.Status.choices)
    subject = django_filters.NumberFilter(field_name="subject_id", min_value=1, max_value=2**62)
    changed_since = django_filters.IsoDateTimeFilter(field_name="last_changed_at", lookup_expr="gte")
    decided_since = django_filters.DateFilter(field_name="decided_on", lookup_expr="gte")
    expires_before = django_filters.DateFilter(field_name="expires_on", lookup_expr="lt")

    class Meta:
        model = Listing
        fields = ["list", "agency", "status", "subject", "changed_since", "decided_since", "expires_before"]


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
