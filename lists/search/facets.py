"""Search filters as SQL conditions on subjects, and the facet counts over the ranked hits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from stdnum import numdb

from lists.models import CreditList, Listing, SubjectType

STATUSES = {
    "active": list(Listing.IN_FORCE),
    "expired": [Listing.Status.EXPIRED],
    "repaired": [Listing.Status.REPAIRED],
    "all": None,
}
FACETS = ("lists", "agencies", "kinds", "subject_types", "regions", "status")

_REGION_PREFIX = re.compile(r"^\d{2}(?:\d{2}){0,2}$")


Facets = dict[str, list[tuple[str, str, int]]]


@dataclass
class SearchFilters:
    lists: list[str] = field(default_factory=list)  # credit list codes
    agencies: list[str] = field(default_factory=list)  # agency codes
    kinds: list[str] = field(default_factory=list)  # CreditList.Kind values
    subject_types: list[str] = field(default_factory=list)  # SubjectType values
    regions: list[str] = field(default_factory=list)  # division code prefixes: 2, 4 or 6 digits
    status: str = "active"  # active | expired | repaired | all


def no_facets() -> dict[str, list[tuple[str, str, int]]]:
    return {name: [] for name in FACETS}


def filter_sql(filters: SearchFilters, subject_column: str) -> tuple[str, list[Any]]:
    """Return " AND …" conditions on a subject id column for the filters, and their parameters."""
    sql, params = "", []
    statuses = STATUSES[filters.status]
    list_conditions, list_params = [], []
    if filters.lists:
        list_conditions.append("cl.code = ANY(%s)")
        list_params.append(list(filters.lists))
    if filters.agencies:
        list_conditions.append("cl.agency_id IN (SELECT a.id FROM agencies_agency a WHERE a.code = ANY(%s))")
        list_params.append(list(filters.agencies))
    if filters.kinds:
        list_conditions.append("cl.kind = ANY(%s)")
        list_params.append(list(filters.kinds))
    if statuses is not None or list_conditions:
        sql += f" AND EXISTS (SELECT 1 FROM lists_listing l WHERE l.subject_id = {subject_column}"  # noqa: S608
        if statuses is not None:
            sql += " AND l.status = ANY(%s)"
            params.append([str(s) for s in statuses])
        if list_conditions:
            sql += " AND l.credit_list_id IN (SELECT cl.id FROM lists_creditlist cl WHERE "
            sql += " AND ".join(list_conditions) + ")"
            params += list_params
        sql += ")"
    regions = [r for r in filters.regions if _REGION_PREFIX.match(r)]
    if filters.subject_types or filters.regions:
        sql += f" AND EXISTS (SELECT 1 FROM lists_subject s WHERE s.id = {subject_column}"  # noqa: S608
        if filters.subject_types:
            sql += " AND s.subject_type = ANY(%s)"
            params.append(list(filters.subject_types))
        if filters.regions:
            sql += " AND s.region_code LIKE ANY(%s)"
            params.append([r + "%" for r in regions] or ["-"])  # only malformed prefixes: no match
        sql += ")"
    return sql, params


def facets_sql(filters: SearchFilters) -> tuple[str, list[Any]]:
    """Return the CTEs and final SELECT that list the hits of CTE r and count them per facet value.

    Every row is (facet, subject_id, tier, len, features, value, label, count); facet "hit" rows
    are the ranked subjects, the others counts of those subjects per list, agency, list kind,
    subject type, region (one level below the deepest region filter) and status.
    """
    statuses = STATUSES[filters.status]
    status_sql = " AND status = ANY(%s)" if statuses is not None else ""
    digits = min(6, 2 + 2 * max((len(r) // 2 for r in filters.regions if _REGION_PREFIX.match(r)), default=0))
    sql = f"""
        l AS MATERIALIZED (
            SELECT l.subject_id, l.status, cl.code, cl.name_zh, cl.kind, a.code AS agency,
                   a.name_zh AS agency_name
            FROM lists_listing l
            JOIN lists_creditlist cl ON cl.id = l.credit_list_id
            JOIN agencies_agency a ON a.id = cl.agency_id
            WHERE l.subject_id = ANY(ARRAY(SELECT subject_id FROM r))
        ), f AS MATERIALIZED (SELECT * FROM l WHERE TRUE{status_sql}),
        s AS MATERIALIZED (
            SELECT id, subject_type, region_code FROM lists_subject
            WHERE id = ANY(ARRAY(SELECT subject_id FROM r))
        )
        SELECT 'hit', subject_id, tier, len, features, NULL, NULL, NULL::bigint FROM r
        UNION ALL SELECT 'lists', NULL, NULL, NULL, NULL, code, max(name_zh), count(DISTINCT subject_id)
            FROM f GROUP BY code
        UNION ALL SELECT 'agencies', NULL, NULL, NULL, NULL, agency, max(agency_name), count(DISTINCT subject_id)
            FROM f GROUP BY agency
        UNION ALL SELECT 'kinds', NULL, NULL, NULL, NULL, kind, '', count(DISTINCT subject_id) FROM f GROUP BY kind
        UNION ALL SELECT 'subject_types', NULL, NULL, NULL, NULL, subject_type, '', count(*)
            FROM s GROUP BY subject_type
        UNION ALL SELECT 'regions', NULL, NULL, NULL, NULL, left(region_code, {digits}), '', count(*)
            FROM s WHERE length(region_code) >= {digits} GROUP BY left(region_code, {digits})
        UNION ALL SELECT 'status', NULL, NULL, NULL, NULL, st, '', count(DISTINCT subject_id) FROM (
            SELECT subject_id, CASE WHEN status IN ('active', 'disputed') THEN 'active' ELSE status END AS st
            FROM l WHERE status IN ('active', 'disputed', 'expired', 'repaired')) x GROUP BY st
    """  # noqa: S608 - only fixed SQL and an integer are interpolated
    return sql, [[str(s) for s in statuses]] if statuses is not None else []


def facet_label(facet: str, value: str) -> str:
    if facet == "kinds":
        return str(dict(CreditList.Kind.choices).get(value, value))
    if facet == "subject_types":
        return str(dict(SubjectType.choices).get(value, value))
    if facet == "status":
        return str(
            {"active": Listing.Status.ACTIVE.label}.get(value, dict(Listing.Status.choices).get(value, value))
        )
    if facet == "regions":
        return region_label(value)
    return value


@cache
def region_label(prefix: str) -> str:
    """Return the name of the division a 2-, 4- or 6-digit code prefix stands for (广东省, 深圳市)."""
    code = prefix.ljust(6, "0")
    names = [
        props.get("province") or props.get("county") or "" for _, props in numdb.get("cn/loc").info(code)
    ]
    names = [re.sub(r"\[[^\]]*\]", "", n.split(",")[-1]).strip() for n in names if n]
    return (names[len(prefix) // 2 - 1] if len(names) >= len(prefix) // 2 else "".join(names)) or prefix
