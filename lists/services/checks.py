"""Answer "may this subject do X now?" and record every screening and check request."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from agencies.models import ApiKey

from .. import identifiers as ids
from ..models import ApiRequestLog, Measure, Subject
from ..models.subjects import legacy_id_condition
from .measures import DERIVED, PENDING, RECORDED
from .screening import lookup_identifier


@dataclass
class CheckResult:
    """The answer of a restriction check, with the records and legal basis behind it."""

    subject: Subject | None
    measure: Measure | None
    restrictions: list[dict[str, Any]] = field(default_factory=list)
    incentives: list[dict[str, Any]] = field(default_factory=list)
    listings: list[dict[str, Any]] = field(default_factory=list)
    data_version: int = 0

    @property
    def allowed(self) -> bool:
        return not self.restrictions

    @property
    def until(self) -> dt.date | None:
        """Return the day the last restriction ends (None when open-ended or none)."""
        ends = [r["until"] for r in self.restrictions]
        return None if not ends or None in ends else max(ends)


_MEASURE_CACHE_SECONDS = 60
_measures: dict[str, Any] = {"at": -1.0, "by_code": {}}


def current_measure(code: str) -> Measure | None:
    """Return the measure with this code in the edition in force (cached for a minute per process)."""
    now = time.monotonic()
    if now - _measures["at"] > _MEASURE_CACHE_SECONDS:
        _measures["by_code"] = {m.code: m for m in Measure.objects.current()}
        _measures["at"] = now
    return _measures["by_code"].get(code)


_SUBJECT_FIELDS = (
    "id", "subject_type", "name", "name_en", "aliases", "uscc", "person_id_masked", "org_code", "legacy_ids",
    "region_code",
)  # fmt: skip
_SUBJECT_LOOKUP = {
    "uscc": "uscc = %s",
    "person_id_hash": "person_id_hash = %s",
    "org_code": "org_code = %s",
    "legacy_ids": legacy_id_condition("legacy_ids", "%s"),
}


def find_subject(identifier: str) -> Subject | None:
    """Return the subject with exactly this identifier (a person's by keyed hash), or None."""
    found = lookup_identifier(identifier)
    if found is None:
        return None
    column, value = found
    # Plain SQL: this runs at every counter check, and the ORM's query building is most of its cost.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(_SUBJECT_FIELDS)} FROM lists_subject "  # noqa: S608 - fixed SQL per column
            f"WHERE {_SUBJECT_LOOKUP[column]} ORDER BY id LIMIT 1",
            [value],
        )
        row = cursor.fetchone()
    return Subject(**dict(zip(_SUBJECT_FIELDS, row, strict=True))) if row else None


# One round trip: the data version, and each in-force restriction with its measure, listing,
# list and agency (a check is called at airline and procurement counters: every trip counts).
# While a recompute is pending (minutes after a big publication or a new catalogue edition),
# a second statement derives the restrictions instead (DERIVED): planning both in one
# statement cost every check ~1 ms.
# The measure is matched by code: a new edition's recompute moves restrictions to its measures
# of the same code, and a process may hold the edition before for a minute (current_measure).
_CHECK_SQL = """
    SELECT v.seq, r.measure_code, r.measure_name, r.measure_kind, r.measure_basis, r.listing_id,
           r.starts_on, r.ends_on, r.list_code, r.list_name, r.agency_code, r.reference, r.status,
           r.decided_on, r.expires_on, r.list_basis, v.pending
    FROM (SELECT COALESCE(MAX(seq), 0) AS seq, {pending} AS pending FROM lists_change) v
    LEFT JOIN LATERAL (
        SELECT m.code AS measure_code, m.name_zh AS measure_name, m.kind AS measure_kind,
               m.legal_basis AS measure_basis, l.id AS listing_id, r.starts_on, r.ends_on,
               cl.code AS list_code, cl.name_zh AS list_name, a.code AS agency_code, l.reference,
               l.status, l.decided_on, l.expires_on, cl.legal_basis AS list_basis
        FROM ({source}) r
        JOIN lists_measure m ON m.id = r.measure_id
        JOIN lists_listing l ON l.id = r.listing_id
        JOIN lists_creditlist cl ON cl.id = l.credit_list_id AND cl.is_public
        JOIN agencies_agency a ON a.id = cl.agency_id
        WHERE r.starts_on <= %(on)s AND (r.ends_on IS NULL OR r.ends_on >= %(on)s)
          AND (%(measure)s::text IS NULL OR m.code = %(measure)s::text)
    ) r ON true
    ORDER BY r.measure_code, r.listing_id
"""
_CHECK_RECORDED = _CHECK_SQL.format(pending=PENDING, source=RECORDED)
_CHECK_DERIVED = _CHECK_SQL.format(pending="false", source=DERIVED)


def check_restriction(
    *, subject: Subject | None, measure: Measure | None, on: dt.date | None = None
) -> CheckResult:
    """Return whether the measure (any measure when None) restricts the subject on the day."""
    on = on or timezone.localdate()
    result = CheckResult(subject=subject, measure=measure)
    params: dict[str, Any] = {
        "subjects": [subject.pk] if subject else [],
        "on": on,
        "measure": measure.code if measure else None,
    }
    with connection.cursor() as cursor:
        cursor.execute(_CHECK_RECORDED, params)
        rows = cursor.fetchall()
        if rows[0][-1]:
            cursor.execute(_CHECK_DERIVED, params)
            rows = cursor.fetchall()
    result.data_version = int(rows[0][0])
    listings: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row[1] is None:
            continue
        target = result.incentives if row[3] == Measure.Kind.INCENTIVE else result.restrictions
        target.append(_restriction(row))
        listings.setdefault(row[5], _listing(row))
    result.listings = [listings[pk] for pk in sorted(listings)]
    return result


def _restriction(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "measure": row[1],
        "name": row[2],
        "kind": row[3],
        "legal_basis": _json(row[4]),
        "listing_id": row[5],
        "starts_on": row[6],
        "until": row[7],
    }


def _listing(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[5],
        "list": row[8],
        "list_name": row[9],
        "agency": row[10],
        "reference": row[11],
        "status": row[12],
        "decided_on": row[13],
        "expires_on": row[14],
        "legal_basis": _json(row[15]),
    }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def safe_identifier(text: str) -> str:
    """Return an identifier as it may be logged: a personal ID number masked, others as given."""
    ident = ids.classify_identifier(text)
    if ident.kind == ids.PERSON_ID:
        return ids.mask_person_id(ident.value)
    return ident.value[:40]


def record_api_request(
    *,
    endpoint: str,
    api_key: ApiKey | None,
    query: dict[str, Any],
    data_version: int,
    results_count: int,
    measure: Measure | None = None,
    subject: Subject | None = None,
    outcome: str = "",
) -> ApiRequestLog:
    """Record one screening or check request for audit and for per-measure enforcement counts.

    The row is committed without waiting for the WAL flush: a check must answer in
    milliseconds, and a database crash can lose at most the last fraction of a second of
    request logs, never published data (synchronous_commit only applies to this transaction).
    """
    log = ApiRequestLog(
        endpoint=endpoint,
        api_key=api_key,
        query=query,
        data_version=data_version,
        results_count=results_count,
        measure=measure,
        subject=subject,
        outcome=outcome,
    )
    with connection.cursor() as cursor:
        # set_config(..., true) lasts until this statement's own transaction commits.
        cursor.execute(
            """INSERT INTO lists_apirequestlog
                   (api_key_id, at, endpoint, query, measure_id, subject_id, data_version, results_count, outcome)
               SELECT %s, now(), %s, %s, %s, %s, %s, %s, %s
               FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed
               RETURNING id, at""",
            [
                api_key.pk if api_key else None,
                endpoint,
                json.dumps(query, ensure_ascii=False, default=str),
                measure.pk if measure else None,
                subject.pk if subject else None,
                data_version,
                results_count,
                outcome,
            ],
        )
        log.pk, log.at = cursor.fetchone()
    return log


def check_counts(*, since: dt.datetime, until: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Return how many checks each measure had in the period, and how many answered restricted."""
    logs = ApiRequestLog.objects.filter(endpoint="check", measure__isnull=False, at__gte=since)
    if until is not None:
        logs = logs.filter(at__lt=until)
    rows = (
        logs.values("measure__code")
        .annotate(checks=Count("id"), restricted=Count("id", filter=Q(outcome="restricted")))
        .order_by("measure__code")
    )
    return [
        {"measure": r["measure__code"], "checks": r["checks"], "restricted": r["restricted"]} for r in rows
    ]
