"""Screening and restriction-check endpoints; every request is recorded for audit."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lists.models import Subject
from lists.services import checks, screening

from . import serializers as s
from .permissions import CanScreen, IsOperator, key_of


class Screen(APIView):
    """Screen up to 1,000 names and/or identifiers; candidates above the threshold, best first.

    Deterministic: the same request on the same `data_version` gives the same answer.
    """

    permission_classes = [CanScreen]

    @staticmethod
    def quota_cost(request: Request) -> int:
        """Count each query against the daily quota."""
        data = request.data if isinstance(request.data, dict) else {}
        queries = data.get("queries")
        return max(1, min(len(queries), 1000)) if isinstance(queries, list) else 1

    @extend_schema(request=s.ScreenRequestSerializer, responses=s.ScreenResponseSerializer)
    def post(self, request: Request) -> Response:
        form = s.ScreenRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        queries = [_query(q) for q in data["queries"]]
        result = screening.screen(queries, threshold=data["threshold"], limit=data["limit"])
        results = [
            {"index": i, "id": q.get("id"), "candidates": [_candidate(c) for c in cands]}
            for i, (q, cands) in enumerate(zip(data["queries"], result.results, strict=True))
        ]
        checks.record_api_request(
            endpoint="screen",
            api_key=key_of(request),
            query=_summary(data["queries"]),
            data_version=result.data_version,
            results_count=sum(len(r["candidates"]) for r in results),
        )
        return Response(
            {"data_version": result.data_version, "threshold": result.threshold, "results": results}
        )


def _query(q: dict[str, Any]) -> screening.ScreenQuery:
    return screening.ScreenQuery(
        name=q.get("name", ""),
        identifier=q.get("identifier", ""),
        subject_type=q.get("subject_type", ""),
        region=q.get("region", ""),
    )


def _candidate(c: screening.Candidate) -> dict[str, Any]:
    return {
        "subject_id": c.subject_id,
        "name": c.subject["name"],
        "identifier": c.subject["identifier"],
        "subject_type": c.subject["subject_type"],
        "region_code": c.subject["region_code"],
        "score": c.score,
        "matched": c.matched,
        "listings": c.listings,
        "restrictions": c.restrictions,
    }


def _summary(queries: list[dict[str, Any]]) -> dict[str, Any]:
    """Return what is logged of a screening request: counts and names, identifiers masked."""
    return {
        "queries": len(queries),
        "with_identifier": sum(1 for q in queries if q.get("identifier")),
        "sample": [
            {"name": q.get("name", "")[:60], "identifier": checks.safe_identifier(q.get("identifier", ""))}
            for q in queries[:5]
        ],
    }


class Check(APIView):
    """May this subject be subject to this measure now? `allowed` or `restricted`, with why and until when."""

    permission_classes = [CanScreen]

    @extend_schema(parameters=[s.CheckQuerySerializer], responses=s.CheckResponseSerializer)
    def get(self, request: Request) -> Response:
        form = s.CheckQuerySerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        args = form.validated_data
        measure = None
        if args.get("measure"):
            measure = checks.current_measure(args["measure"])
            if measure is None:
                raise serializers.ValidationError({"measure": "no such measure in the catalogue in force"})
        if args.get("subject"):
            subject = Subject.objects.filter(pk=args["subject"]).first()
        elif screening.lookup_identifier(args["identifier"]) is None:
            # A mistyped number must not read as "allowed" at the counter.
            raise serializers.ValidationError(
                {"identifier": "not a valid USCC, organisation code or ID number"}
            )
        else:
            subject = checks.find_subject(args["identifier"])
        result = checks.check_restriction(subject=subject, measure=measure)
        outcome = "allowed" if result.allowed else "restricted"
        checks.record_api_request(
            endpoint="check",
            api_key=key_of(request),
            query={
                "identifier": checks.safe_identifier(args.get("identifier", "")),
                "subject": args.get("subject"),
            },
            data_version=result.data_version,
            results_count=len(result.restrictions),
            measure=measure,
            subject=subject,
            outcome=outcome,
        )
        body = {
            "outcome": outcome,
            "allowed": result.allowed,
            "until": result.until,
            "subject": s.SubjectSerializer(subject).data if subject else None,
            "measure": measure.code if measure else None,
            "restrictions": result.restrictions,
            "incentives": result.incentives,
            "listings": result.listings,
            "data_version": result.data_version,
        }
        return Response(body)


class CheckCounts(APIView):
    """How often each measure was checked (enforced) since a time, and how often it restricted."""

    permission_classes = [IsOperator]

    @extend_schema(parameters=[s.CheckCountsQuerySerializer], responses=s.CheckCountSerializer(many=True))
    def get(self, request: Request) -> Response:
        form = s.CheckCountsQuerySerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        since = form.validated_data.get("since") or timezone.now() - dt.timedelta(days=30)
        return Response(checks.check_counts(since=since, until=form.validated_data.get("until")))
