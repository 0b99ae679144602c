"""Read endpoints of the integrators' API: subjects, lists, agencies, measures, listings, changes."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from agencies.models import Agency
from lists.models import CreditList, Listing, Measure, Subject
from lists.search.query import SearchFilters, search_subjects
from lists.services.feed import feed_data_sql
from lists.services.measures import in_force

from . import serializers as s
from .filters import ListingFilter, SubjectFilter

MAX_CHANGES = 10_000


class ByIdCursor(CursorPagination):
    ordering = "id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 1000


# What an integrator who opens /api/v1/ is shown: where to read on (the URL names of portal/api/urls).
_ROOT_LINKS = {
    "docs": "docs", "schema": "schema", "agencies": "agency-list", "lists": "list-list",
    "measures": "measure-list", "subjects": "subject-list", "listings": "listing-list",
    "changes": "change-list", "check": "check", "screen": "screen", "exports": "export-list",
    "watchlists": "watchlist-list", "webhooks": "webhook-list",
}  # fmt: skip


class ApiRoot(APIView):
    """The API's entry point: links to its documentation, its OpenAPI schema and each resource."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        links = {key: reverse(f"api:{name}", request=request) for key, name in _ROOT_LINKS.items()}
        return Response({"name": "Xinyong API", "version": "v1", "links": links})


class AgencyList(generics.ListAPIView):
    """Agencies that publish or enforce lists."""

    queryset = Agency.objects.order_by("code")
    serializer_class = s.AgencySerializer
    pagination_class = None


class CreditListList(generics.ListAPIView):
    """The public credit lists (blacklists, redlists, registers, penalty and licence records)."""

    queryset = CreditList.objects.public().select_related("agency").order_by("code")
    serializer_class = s.CreditListSerializer
    pagination_class = None


class MeasureList(generics.ListAPIView):
    """The measures of the catalogue edition in force, with their legal basis and triggering lists."""

    queryset = (
        Measure.objects.current().select_related("edition").prefetch_related("triggered_by").order_by("code")
    )
    serializer_class = s.MeasureSerializer
    pagination_class = None


class ListingList(generics.ListAPIView):
    """Listings on public lists, filtered by list, agency, status, subject or change time."""

    queryset = Listing.objects.filter(credit_list__is_public=True).select_related("credit_list__agency")
    serializer_class = s.ListingSerializer
    filterset_class = ListingFilter
    pagination_class = ByIdCursor


class SubjectList(APIView):
    """Search subjects by name or identifier (`q`), ranked and filtered like the public search.

    By default only subjects with an in-force listing are found, as on the public site
    (`status=all` finds every subject). Without `q`, subjects are listed by id.
    """

    @extend_schema(
        operation_id="subjects_search",
        parameters=[
            OpenApiParameter("q", str, description="Name (Chinese, pinyin, English) or identifier"),
            OpenApiParameter("subject_type", str),
            OpenApiParameter("region", str, description="Region code prefix"),
            OpenApiParameter("list", str, description="Credit list code"),
            OpenApiParameter("agency", str, description="Agency code"),
            OpenApiParameter("kind", str, enum=[k.value for k in CreditList.Kind]),
            OpenApiParameter(
                "status", str, enum=["active", "expired", "repaired", "all"], description="Default: active"
            ),
            OpenApiParameter("page", int),
            OpenApiParameter("per_page", int),
        ],
        responses=s.SubjectSearchResponseSerializer,
    )
    def get(self, request: Request) -> Response:
        form = SubjectFilter(request.query_params, queryset=Subject.objects.none())
        if not form.is_valid():
            raise serializers.ValidationError(form.errors)
        page, per_page = _page_args(request)
        data = form.form.cleaned_data
        hits, total, capped = _search(data.get("q") or "", data, page, per_page)
        return Response(
            {
                "count": total,
                "total_is_capped": capped,
                "page": page,
                "per_page": per_page,
                "results": s.SearchHitSerializer(hits, many=True).data,
            }
        )


def _page_args(request: Request) -> tuple[int, int]:
    try:
        page = max(1, min(int(request.query_params.get("page", 1)), 1000))
        per_page = max(1, min(int(request.query_params.get("per_page", 20)), 100))
    except ValueError:
        raise serializers.ValidationError({"page": "must be an integer"}) from None
    return page, per_page


def _search(q: str, filters: dict[str, Any], page: int, per_page: int) -> tuple[list[Subject], int, bool]:
    """Return one page of hits (subjects with .score and .matched), the total and if it is capped."""
    q = q.strip()
    if not q:
        subjects = _filtered(Subject.objects.order_by("id"), filters)
        chosen = list(subjects[(page - 1) * per_page : page * per_page])
        for subject in chosen:
            _annotate(subject, 1.0, [])
        return chosen, subjects.count(), False
    result = search_subjects(q, filters=_search_filters(filters), page=page, per_page=per_page)
    chosen = []
    for hit in result.hits:
        _annotate(hit.subject, hit.score, list(hit.matched))
        chosen.append(hit.subject)
    return chosen, result.total, bool(result.total_is_capped)


def _annotate(subject: Subject, score: float, matched: list[str]) -> None:
    """Attach a hit's score and matched features for the serializer."""
    subject.score = score  # type: ignore[attr-defined]
    subject.matched = matched  # type: ignore[attr-defined]


def _search_filters(filters: dict[str, Any]) -> SearchFilters:
    """Return the public search's filters from this endpoint's parameters."""
    one = lambda name: [filters[name]] if filters.get(name) else []  # noqa: E731
    return SearchFilters(
        lists=one("list"),
        agencies=one("agency"),
        kinds=one("kind"),
        subject_types=one("subject_type"),
        regions=one("region"),
        status=filters.get("status") or "active",
    )


def _filtered(subjects: QuerySet[Subject], filters: dict[str, Any]) -> QuerySet[Subject]:
    if filters.get("subject_type"):
        subjects = subjects.filter(subject_type=filters["subject_type"])
    if filters.get("region"):
        subjects = subjects.filter(region_code__startswith=filters["region"])
    return subjects


class SubjectDetail(generics.RetrieveAPIView):
    """One subject with its in-force listings (with provenance) and the measures in force today."""

    serializer_class = s.SubjectDetailSerializer

    def get_queryset(self) -> QuerySet[Subject]:
        listings = (
            Listing.objects.in_force()
            .filter(credit_list__is_public=True)
            .select_related("credit_list__agency")
            .order_by("credit_list__code", "-decided_on", "pk")
        )
        return Subject.objects.prefetch_related(
            Prefetch("listings", queryset=listings, to_attr="in_force_listings")
        )

    def get_object(self) -> Subject:
        subject: Subject = super().get_object()
        # Live: derived while a big batch's restrictions are still being written.
        shown = {listing.pk for listing in subject.in_force_listings}  # type: ignore[attr-defined]
        restrictions = in_force([subject.pk], timezone.localdate())
        subject.restrictions_in_force = [r for r in restrictions if r.listing_id in shown]  # type: ignore[attr-defined]
        return subject


_CHANGES_SQL = """
    WITH page AS (
        SELECT c.seq, c.op, c.reason, c.subject_id, c.listing_id, cl.code, c.batch_id, c.created_at,
               {data} AS data
        FROM lists_change c JOIN lists_creditlist cl ON cl.id = c.credit_list_id
        WHERE c.seq > %s AND cl.is_public {list_filter}
        ORDER BY c.seq LIMIT %s
    )
    SELECT '[' || COALESCE(string_agg(concat(
               '{{"seq":', seq, ',"op":', to_json(op), ',"reason":', to_json(reason),
               ',"subject_id":', subject_id, ',"listing_id":', listing_id, ',"list":', to_json(code),
               ',"batch_id":', COALESCE(batch_id::text, 'null'), ',"created_at":', to_json(created_at),
               ',"data":', data::text, '}}'), ',' ORDER BY seq), '') || ']',
           MAX(seq),
           (SELECT COALESCE(MAX(seq), 0) FROM lists_change)
    FROM page
""".replace("{data}", feed_data_sql("c"))


class ChangeFeed(APIView):
    """The change feed: additions, modifications and removals (tombstones) in strictly increasing `seq`.

    Read on with `after=next_after`. The feed's writers are serialised, so a sequence number
    only becomes visible after every smaller one: nothing is ever skipped or reordered.
    """

    @extend_schema(
        parameters=[
            OpenApiParameter("after", OpenApiTypes.INT64, description="Return changes with seq above this"),
            OpenApiParameter("limit", int, description=f"At most this many (1–{MAX_CHANGES}, default 1000)"),
            OpenApiParameter("list", str, description="Only changes of this list (code)"),
        ],
        responses=s.ChangePageSerializer,
    )
    def get(self, request: Request) -> HttpResponse:
        after, limit = (
            _int_arg(request, "after", 0, 0, 2**62),
            _int_arg(request, "limit", 1000, 1, MAX_CHANGES),
        )
        code = request.query_params.get("list")
        sql = _CHANGES_SQL.format(list_filter="AND cl.code = %s" if code else "")
        with connection.cursor() as cursor:
            cursor.execute(sql, [after, *([code] if code else []), limit])
            items, last, version = cursor.fetchone()
        # The JSON is built by PostgreSQL (concatenation beats json_build_object by ~20 %):
        # parsing the jsonb into Python and encoding it again would cost most of the time.
        body = f'{{"items": {items}, "next_after": {last or after}, "data_version": {version}}}'
        return HttpResponse(body, content_type="application/json")


def _int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise serializers.ValidationError({name: "must be an integer"}) from None
    if not low <= value <= high:
        raise serializers.ValidationError({name: f"must be between {low} and {high}"})
    return value
