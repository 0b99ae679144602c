from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from lists.models import CatalogueEdition, CreditList, Measure
from lists.services.reference import FIXTURES, load_reference

pytestmark = pytest.mark.django_db


def test_reference_data_has_every_list_and_measure_with_its_legal_basis() -> None:
    catalogue = json.loads((FIXTURES / "catalogue.json").read_text())
    assert CreditList.objects.count() == len(catalogue["lists"]) == 29
    assert Measure.objects.current().count() == len(catalogue["measures"]) == 36
    assert not CreditList.objects.filter(legal_basis=[]).exists()
    assert not Measure.objects.filter(legal_basis=[]).exists()
    kinds = set(CreditList.objects.values_list("kind", flat=True))
    assert kinds == {"blacklist", "redlist", "register", "penalty", "licence"}


def test_a_measure_applies_only_to_the_lists_the_catalogue_names() -> None:
    measure = Measure.objects.current().get(code="M_HIGH_CONSUMPTION_RESTRICTION")
    assert set(measure.triggered_by.values_list("code", flat=True)) == {
        "SPC_DEFAULTER",
        "SPC_CONSUMPTION_RESTRICTED",
    }


def test_publication_period_rules_are_machine_readable() -> None:
    penalty = CreditList.objects.get(code="ADMIN_PENALTY")
    assert penalty.period_rule["tiers"] == {"minor": 3, "general": 12, "serious": 36}
    assert CreditList.objects.get(code="TAX_MAJOR_VIOLATION").period_rule == {"kind": "fixed", "months": 36}
    assert not CreditList.objects.get(code="SPC_DEFAULTER").is_repairable


def test_loading_twice_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    before = (CreditList.objects.count(), Measure.objects.count(), CatalogueEdition.objects.count())
    call_command("load_reference")
    assert "edition already loaded" in capsys.readouterr().out
    assert (CreditList.objects.count(), Measure.objects.count(), CatalogueEdition.objects.count()) == before


def test_a_new_edition_becomes_current_and_keeps_the_old_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    catalogue = json.loads((FIXTURES / "catalogue.json").read_text())
    catalogue["meta"]["edition"] = "2027-test"
    catalogue["measures"] = catalogue["measures"][:5]
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(catalogue, ensure_ascii=False))
    summary = load_reference(catalogue_path=path)
    assert summary.is_new_edition and summary.measures == 5
    assert CatalogueEdition.objects.get(is_current=True).code == "2027-test"
    assert Measure.objects.current().count() == 5
    assert Measure.objects.count() == 41


def test_demo_staff_accounts_can_upload_and_approve_for_one_agency(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from django.contrib.auth import get_user_model

    from agencies.models import Agency
    from agencies.roles import has_role

    call_command("seed_demo_staff", "--password", "a-long-demo-password")
    users = get_user_model().objects
    agency = Agency.objects.get(code="sta")
    assert has_role(users.get(username="demo-uploader"), agency, "uploader")
    assert has_role(users.get(username="demo-approver"), agency, "approver")
    assert not has_role(users.get(username="demo-approver"), Agency.objects.get(code="spc"))
    assert users.get(username="demo-approver").check_password("a-long-demo-password")
    assert "demo-uploader / demo-approver" in capsys.readouterr().out
