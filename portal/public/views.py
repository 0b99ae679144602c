"""Public pages: search, one page per subject, directories, statistics, credit reports."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django.views.generic import DetailView, ListView, TemplateView

from agencies.models import Agency
from lists.identifiers import PERSON_ID, USCC, classify_identifier, compact_identifier, mask_person_id
from lists.models import CatalogueEdition, CreditList, Listing, Measure, Source, Subject
from lists.search.query import SearchFilters, SearchResult, search_subjects
from lists.services.profiles import in_force_public_listings, subject_profile
from lists.services.reports import issue_report, verify_report
from lists.services.statistics import PROVINCES, listing_statistics

from .charts import bar_chart, month_chart
from .filters import STATUS_CHOICES, SubjectFilterSet
from .forms import VerifyForm
from .pdf import render_report_pdf

PER_PAGE = 20
FACET_PARAMS = {"list": "list", "lists": "list", "agency": "agency", "agencies": "agency", "kind": "kind",
                "kinds": "kind", "subject_type": "subject_type", "subject_types": "subject_type",
                "region": "region", "regions": "region", "status": "status"}  # fmt: skip
FACET_TITLES = {"list": _("List"), "agency": _("Agency"), "kind": _("Kind"), "subject_type": _("Subject type"),
                "region": _("Region"), "status": _("Status")}  # fmt: skip


class HomeView(TemplateView):
    template_name = "portal/home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        stats = listing_statistics()
        return super().get_context_data(stats=stats, list_count=CreditList.objects.public().count(), **kwargs)


def is_person_id_query(q: str) -> bool:
    """Return whether a query is (or looks like) a personal ID number, which must not be echoed."""
    ident = classify_identifier(q)
    if ident.kind == PERSON_ID:
        return True
    # An 18-digit number that is not a clean USCC is treated as an ID number with a typo.
    value = compact_identifier(q)
    return len(value) in (15, 17, 18) and value[:17].isdigit() and not (ident.kind == USCC and ident.is_valid)


def masked_query(q: str) -> str:
    """Return the form of a personal ID query that may be shown."""
    return mask_person_id(compact_identifier(q))


@dataclass
class FacetValue:
    value: str
    label: str
    count: int
    selected: bool
    url: str


def _toggle_url(params: QueryDict, name: str, value: str) -> str:
    query = params.copy()
    query.pop("page", None)
    values = query.getlist(name)
    if name == "status":
        query[name] = value
    else:
        query.setlist(name, [v for v in values if v != value] if value in values else [*values, value])
    return "?" + query.urlencode()


def _facets(
    params: QueryDict, facets: dict[str, list[tuple[str, str, int]]]
) -> list[tuple[str, list[FacetValue]]]:
    shown = []
    for key, values in facets.items():
        name = FACET_PARAMS.get(key, key)
        chosen = params.getlist(name)
        rows = [FacetValue(v, label, n, v in chosen, _toggle_url(params, name, v)) for v, label, n in values]
        if rows:
            shown.append((str(FACET_TITLES.get(name, name)), rows))
    return shown


def _pages(params: QueryDict, page: int, total: int) -> list[tuple[int, str, bool]]:
    last = max(1, math.ceil(total / PER_PAGE))
    numbers = sorted({1, last, *range(max(1, page - 2), min(last, page + 2) + 1)})
    links = []
    for number in numbers:
        query = params.copy()
        query["page"] = str(number)
        links.append((number, "?" + query.urlencode(), number == page))
    return links


def _page_number(request: HttpRequest) -> int:
    try:
        return min(max(1, int(request.GET.get("page", "1"))), 500)
    except ValueError:
        return 1


def search(request: HttpRequest) -> HttpResponse:
    """Search subjects; an identifier that matches goes straight to the subject's page."""
    filterset = SubjectFilterSet(request.GET, queryset=Subject.objects.none())
    q, status = filterset.cleaned("q").strip(), filterset.cleaned("status") or "active"
    hidden = is_person_id_query(q)
    params = _params_without_person_id(request.GET, hidden)
    context: dict[str, Any] = {
        "q": masked_query(q) if hidden else q, "is_id_hidden": hidden, "result": None,
        "safe_query": params.urlencode(), "status": status, "status_choices": STATUS_CHOICES,
    }  # fmt: skip
    if q:
        page = _page_number(request)
        result = search_subjects(q, filters=_search_filters(filterset, status), page=page, per_page=PER_PAGE)
        if result.identifier_match is not None:
            return redirect("public:subject-detail", pk=result.identifier_match.pk)
        context.update(_result_context(params, page, result))
    return render(request, "portal/search.html", context)


def _params_without_person_id(query: QueryDict, hidden: bool) -> QueryDict:
    """Return the query parameters to put into links: a personal ID number never goes back."""
    params = query.copy()
    if hidden:
        params.pop("q", None)
    return params


def _search_filters(filterset: SubjectFilterSet, status: str) -> SearchFilters:
    return SearchFilters(
        lists=filterset.cleaned("list"), agencies=filterset.cleaned("agency"), kinds=filterset.cleaned("kind"),
        subject_types=filterset.cleaned("subject_type"), regions=filterset.cleaned("region"), status=status,
    )  # fmt: skip


def _result_context(params: QueryDict, page: int, result: SearchResult) -> dict[str, Any]:
    return {
        "result": result, "page": page, "facets": _facets(params, result.facets),
        "pages": _pages(params, page, result.total),
        "listings": _listings_by_subject([hit.subject.pk for hit in result.hits]),
    }  # fmt: skip


def _listings_by_subject(subject_ids: list[int]) -> dict[int, list[Listing]]:
    """Return the in-force listings of the subjects on one result page, in one query."""
    grouped: dict[int, list[Listing]] = {pk: [] for pk in subject_ids}
    if not subject_ids:
        return grouped
    for listing in sorted(in_force_public_listings(subject_ids), key=lambda x: (x.credit_list.code, x.pk)):
        grouped[listing.subject_id].append(listing)
    return grouped


class SubjectDetailView(DetailView):
    model = Subject
    template_name = "portal/subject.html"
    context_object_name = "subject"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(profile=subject_profile(self.object), **kwargs)


def _verify_url(request: HttpRequest, number: str, sha256: str) -> str:
    query = QueryDict(mutable=True)
    query.update({"number": number, "sha256": sha256})
    return request.build_absolute_uri(reverse("public:report-verify") + "?" + query.urlencode())


def report_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Issue a numbered report and show it in a print-friendly page."""
    report, profile = issue_report(subject=get_object_or_404(Subject, pk=pk), language=get_language())
    verify_url = _verify_url(request, report.number, report.content_sha256)
    response = render(
        request, "portal/report.html", {"report": report, "profile": profile, "verify_url": verify_url}
    )
    response["X-Robots-Tag"] = "noindex"
    return response


def report_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    """Issue a numbered report and return it as a PDF download."""
    report, profile = issue_report(subject=get_object_or_404(Subject, pk=pk), language=get_language())
    verify_url = _verify_url(request, report.number, report.content_sha256)
    response = HttpResponse(
        render_report_pdf(report, profile, verify_url=verify_url), content_type="application/pdf"
    )
    response["Content-Disposition"] = f'attachment; filename="credit-report-{report.number}.pdf"'
    response["X-Robots-Tag"] = "noindex"
    return response


def report_verify(request: HttpRequest) -> HttpResponse:
    """Confirm a report number and its content hash, and say whether the records changed since."""
    form = VerifyForm(request.GET or None)
    verification = None
    if form.is_valid():
        verification = verify_report(number=form.cleaned_data["number"], sha256=form.cleaned_data["sha256"])
    return render(request, "portal/report_verify.html", {"form": form, "verification": verification})


class AgencyDirectoryView(ListView):
    template_name = "portal/agencies.html"
    context_object_name = "agencies"

    def get_queryset(self) -> QuerySet[Agency]:
        public_lists = CreditList.objects.public().order_by("kind", "code")
        return (
            Agency.objects.filter(credit_lists__is_public=True)
            .distinct()
            .prefetch_related(Prefetch("credit_lists", queryset=public_lists, to_attr="public_lists"))
        )


@dataclass
class ListRow:
    credit_list: CreditList
    entries: int
    last_change: Any


class ListDirectoryView(ListView):
    template_name = "portal/lists.html"
    context_object_name = "lists"

    def get_queryset(self) -> QuerySet[CreditList]:
        return CreditList.objects.public().select_related("agency").order_by("kind", "code")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        stats = listing_statistics()  # cached: counting a million listings per request is too slow
        rows = [
            ListRow(cl, stats.in_force_by_list.get(cl.pk, 0), stats.last_change_by_list.get(cl.pk))
            for cl in self.object_list
        ]
        stale_ids = set(Source.objects.overdue(timezone.now()).values_list("credit_list_id", flat=True))
        return super().get_context_data(rows=rows, stats=stats, stale_ids=stale_ids, **kwargs)


class MeasureCatalogueView(TemplateView):
    template_name = "portal/measures.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        editions = list(CatalogueEdition.objects.order_by("-is_current", "-loaded_at"))
        chosen = self.request.GET.get("edition")
        edition = next((e for e in editions if e.code == chosen), editions[0] if editions else None)
        measures = (
            Measure.objects.filter(edition=edition)
            .prefetch_related(Prefetch("triggered_by", queryset=CreditList.objects.public().order_by("code")))
            .order_by("-kind", "category", "code")  # punishments first
        )
        return super().get_context_data(editions=editions, edition=edition, measures=measures, **kwargs)


class StatisticsView(TemplateView):
    template_name = "portal/statistics.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        from portal.templatetags.public_tags import localized, province

        stats = listing_statistics()
        lists = list(CreditList.objects.public().select_related("agency"))
        by_list = sorted(
            ((localized(cl), stats.in_force_by_list.get(cl.pk, 0)) for cl in lists), key=lambda r: -r[1]
        )
        by_agency: dict[str, int] = {}
        for cl in lists:
            name = localized(cl.agency)
            by_agency[name] = by_agency.get(name, 0) + stats.in_force_by_list.get(cl.pk, 0)
        by_region = sorted(
            ((province(code), n) for code, n in stats.in_force_by_province.items() if code in PROVINCES),
            key=lambda r: -r[1],
        )
        series = [("new", _("New listings"), stats.new_by_month), ("expired", _("Expired"), stats.expired_by_month),
                  ("repaired", _("Repaired"), stats.repaired_by_month)]  # fmt: skip
        charts = {
            "by_list": bar_chart([r for r in by_list if r[1]], title=str(_("Records in force by list"))),
            "by_agency": bar_chart(sorted(by_agency.items(), key=lambda r: -r[1]), title=str(_("Records in force by agency"))),
            "by_region": bar_chart(by_region, title=str(_("Records in force by province"))),
            "months": month_chart(stats.months, [(k, str(label), c) for k, label, c in series], title=str(_("Per month"))),
            "repaired": month_chart(stats.months, [("repaired", str(_("Repaired")), stats.repaired_by_month)], title=str(_("Repair outcomes per month"))),
        }  # fmt: skip
        monthly = [
            (
                m,
                stats.new_by_month.get(m, 0),
                stats.expired_by_month.get(m, 0),
                stats.repaired_by_month.get(m, 0),
            )
            for m in stats.months
        ]
        return super().get_context_data(
            stats=stats, charts=charts, by_list=by_list, monthly=monthly, **kwargs
        )
