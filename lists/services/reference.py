"""Load the reference data: agencies, the national lists and the measure catalogue."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction

from agencies.models import Agency

from ..models import CatalogueEdition, CreditList, Listing, Measure
from .measures import defer_recompute

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@dataclass
class ReferenceSummary:
    agencies: int
    lists: int
    measures: int
    edition: str
    is_new_edition: bool


def load_reference(*, catalogue_path: Path | None = None) -> ReferenceSummary:
    """Create or update agencies, lists and the catalogue edition; safe to run again."""
    payload = (catalogue_path or FIXTURES / "catalogue.json").read_bytes()
    catalogue = json.loads(payload)
    owners = json.loads((FIXTURES / "agencies.json").read_text())["agencies"]
    rules = json.loads((FIXTURES / "list_rules.json").read_text())
    with transaction.atomic():
        agency_by_list = _load_agencies(owners)
        lists = [
            _load_list(entry, agency_by_list, rules.get(entry["code"], {})) for entry in catalogue["lists"]
        ]
        edition, is_new = _load_edition(catalogue, hashlib.sha256(payload).hexdigest())
        measures = [_load_measure(edition, entry) for entry in catalogue["measures"]]
        if is_new:
            _recompute_on_commit()
    return ReferenceSummary(
        len(set(agency_by_list.values())), len(lists), len(measures), edition.code, is_new
    )


def _recompute_on_commit() -> None:
    """Recompute every listing's restrictions under the new edition, in the background, once committed.

    The recompute writes one "modify" change (reason "catalogue") per in-force listing whose
    measures changed, so integrators see the new edition's effect in the feed. Until it has,
    checks derive what is in force under the new edition (measures.in_force_sql).
    """
    from ..tasks import apply_measures  # tasks import services: import at call time

    if Listing.objects.in_force().exists():  # a fresh install has nothing to recompute
        defer_recompute(reason="catalogue")  # settled by the full recompute
        apply_measures.delay_on_commit(reason="catalogue", feed_reason="catalogue")


def _load_agencies(owners: list[dict[str, Any]]) -> dict[str, Agency]:
    agency_by_list: dict[str, Agency] = {}
    for owner in owners:
        agency, _ = Agency.objects.update_or_create(
            code=owner["code"], defaults={"name_zh": owner["name_zh"], "name_en": owner["name_en"]}
        )
        agency_by_list.update(dict.fromkeys(owner["lists"], agency))
    return agency_by_list


def _load_list(entry: dict[str, Any], agency_by_list: dict[str, Agency], rule: dict[str, Any]) -> CreditList:
    if entry["code"] not in agency_by_list:
        raise ValueError(f"list {entry['code']} has no owning agency in fixtures/agencies.json")
    is_reward_or_register = entry["kind"] in {"redlist", "register", "licence"}
    credit_list, _ = CreditList.objects.update_or_create(
        code=entry["code"],
        defaults={
            "agency": agency_by_list[entry["code"]],
            "name_zh": entry["name_zh"],
            "name_en": entry.get("name_en", ""),
            "kind": entry["kind"],
            "subject_types": entry.get("subject_type", []),
            "legal_basis": entry.get("legal_basis", []),
            "entry_criteria": entry.get("entry_criteria", ""),
            "publication_period": entry.get("publication_period", ""),
            "removal_rule": entry.get("removal_rule", ""),
            "confidence": entry.get("confidence", "")[:200],
            "sources": entry.get("sources", []),
            "period_rule": rule.get("period_rule", {"kind": "until_removed"}),
            "is_repairable": rule.get("is_repairable", not is_reward_or_register),
            "repair_min_months": rule.get("repair_min_months", {}),
        },
    )
    return credit_list


def _load_edition(catalogue: dict[str, Any], sha256: str) -> tuple[CatalogueEdition, bool]:
    code = catalogue["meta"].get("edition") or f"catalogue-{sha256[:12]}"
    edition = CatalogueEdition.objects.filter(code=code).first()
    if edition is not None:
        return edition, False
    CatalogueEdition.objects.filter(is_current=True).update(is_current=False)
    title = catalogue["meta"].get("description", "")[:300]
    return CatalogueEdition.objects.create(
        code=code, title=title, source_sha256=sha256, is_current=True
    ), True


def _load_measure(edition: CatalogueEdition, entry: dict[str, Any]) -> Measure:
    measure, _ = Measure.objects.update_or_create(
        edition=edition,
        code=entry["code"],
        defaults={
            "name_zh": entry["name_zh"],
            "name_en": entry.get("name_en", ""),
            "category": entry["category"],
            "kind": entry["kind"],
            "implementing_agency": entry.get("implementing_agency", "")[:300],
            "legal_basis": entry.get("legal_basis", []),
            "applies_to_note": entry.get("applies_to_note", ""),
            "confidence": entry.get("confidence", "")[:200],
            "sources": entry.get("sources", []),
        },
    )
    measure.triggered_by.set(CreditList.objects.filter(code__in=entry.get("applies_to", [])))
    return measure
