"""Row cleaning and validation rules shared by every import format (no database needed)."""

from __future__ import annotations

import csv
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lists.importers import FieldSpec, ListSchema, RowResult, find_duplicates, validate_row
from lists.importers.base import Limits
from lists.importers.validation import check_cell, parse_date

DATA = Path(__file__).resolve().parent.parent / "data"
TODAY = date(2024, 6, 1)
LEGAL_PERSONS = ListSchema(
    subject_types=["legal_person", "individual_business"], required=["name", "identifier"]
)
PEOPLE = ListSchema(subject_types=["natural_person"], required=["name", "identifier"])


def ric(expected: str) -> list[str]:
    """Return personal ID numbers from tests/data/ric_vectors.csv with the given expectation."""
    with (DATA / "ric_vectors.csv").open(encoding="utf-8") as f:
        return [row["code"] for row in csv.DictReader(f) if row["expected"] == expected]


def uscc(expected: str) -> list[str]:
    with (DATA / "uscc_vectors.csv").open(encoding="utf-8") as f:
        return [row["code"] for row in csv.DictReader(f) if row["expected"] == expected]


def check(data: dict, schema: ListSchema | None = None) -> tuple[list[str], list[str]]:
    return validate_row(data, schema or ListSchema(), today=TODAY)


@pytest.mark.parametrize(
    "text",
    ["2023-01-05", "2023/1/5", "2023.01.05", "20230105", "2023年1月5日", "2023 年 1 月 5 日", "２０２３－０１－０５",
     "2023-01-05 00:00:00", "二〇二三年一月五日", "44931", 44931, 44931.0, datetime(2023, 1, 5, 0, 0), date(2023, 1, 5)],
)  # fmt: skip
def test_dates_are_read_in_every_common_form(text: object) -> None:
    assert parse_date(text) == date(2023, 1, 5)


def test_chinese_numeral_dates_with_ten_are_read() -> None:
    assert parse_date("二〇二三年十二月二十五日") == date(2023, 12, 25)


@pytest.mark.parametrize("text", ["2023-13-45", "05/01/2023", "2023", 2023, "not a date", "2023-02-30"])
def test_impossible_or_ambiguous_dates_are_not_guessed(text: object) -> None:
    assert parse_date(text) is None


def test_a_bad_date_is_an_error_naming_the_field_and_value() -> None:
    data = {"name": "示例有限公司", "decided_on": "2023-13-45"}
    errors, _ = check(data)
    assert errors == ["decided_on: not a date: '2023-13-45'"]
    assert "decided_on" not in data


def test_dates_are_cleaned_in_place_and_validation_can_run_again() -> None:
    data = {"name": "示例有限公司", "decided_on": "2023/1/5", "region": "4403", "aliases": "甲；乙;甲"}
    first = check(data)
    snapshot = dict(data)
    assert check(data) == first
    assert (
        data
        == snapshot
        == {
            "name": "示例有限公司",
            "decided_on": date(2023, 1, 5),
            "region": "440300",
            "aliases": ["甲", "乙"],
        }
    )


def test_expiry_before_the_decision_is_an_error() -> None:
    errors, _ = check({"name": "示例有限公司", "decided_on": "2023-05-01", "expires_on": "2023-04-30"})
    assert errors == ["expires_on: 2023-04-30 is before decided_on 2023-05-01"]


def test_a_decision_in_the_future_is_an_error() -> None:
    errors, _ = check({"name": "示例有限公司", "decided_on": "2030-01-01"})
    assert errors == ["decided_on: in the future (2030-01-01)"]


def test_an_expiry_already_past_is_a_warning() -> None:
    errors, warnings = check({"name": "示例有限公司", "decided_on": "2020-01-01", "expires_on": "2021-01-01"})
    assert errors == []
    assert warnings == ["expires_on: 2021-01-01 has passed; the record will show as expired"]


@pytest.mark.parametrize(("value", "code"), [("440303", "440303"), ("44", "440000"), ("4403", "440300"),
                                             ("广东省深圳市", "440300"), ("深圳", "440300"), ("北京市海淀区", "110108")])  # fmt: skip
def test_region_codes_and_names_become_six_digit_codes(value: str, code: str) -> None:
    data = {"name": "示例有限公司", "region": value}
    assert check(data) == ([], [])
    assert data["region"] == code


@pytest.mark.parametrize("value", ["999999", "4499", "12345"])
def test_an_unknown_region_code_is_an_error(value: str) -> None:
    errors, _ = check({"name": "示例有限公司", "region": value})
    assert errors == [f"region: unknown administrative division code '{value}'"]


def test_a_region_name_that_is_no_division_is_dropped_with_a_warning() -> None:
    data = {"name": "示例有限公司", "region": "华南"}
    assert check(data) == ([], ["region: '华南' is not a known administrative division; left empty"])
    assert "region" not in data


def test_a_malformed_credit_code_is_an_error() -> None:
    errors, _ = check({"name": "示例有限公司", "identifier": "9111000060003IOZSV"}, LEGAL_PERSONS)
    assert errors == ["identifier: malformed Unified Social Credit Code"]


@pytest.mark.parametrize("code", uscc("checksum_fails_but_real"))
def test_a_failing_check_digit_is_only_a_warning(code: str) -> None:
    errors, warnings = check({"name": "示例有限公司", "identifier": code}, LEGAL_PERSONS)
    assert errors == []
    assert warnings == ["identifier: Unified Social Credit Code check digit does not match"]


@pytest.mark.parametrize("code", ["360424586585180", "36072359378986X"])
def test_legacy_fifteen_character_tax_numbers_are_accepted(code: str) -> None:
    data = {"name": "示例有限公司", "identifier": code}
    assert check(data, LEGAL_PERSONS) == ([], [])
    assert data["identifier_kind"] == "legacy_reg"


def test_a_legacy_tax_number_with_a_wrong_check_character_is_a_warning() -> None:
    _, warnings = check({"name": "示例有限公司", "identifier": "36072359378987X"}, LEGAL_PERSONS)
    assert warnings == ["identifier: tax registration number check character does not match"]


def test_the_subject_type_is_inferred_from_the_identifier() -> None:
    company = {"name": "示例有限公司", "identifier": "91 110000 600037341L"}
    business = {"name": "示例个体户", "identifier": "92310115MA1LAG5R9M"}
    check(company, LEGAL_PERSONS)
    check(business, LEGAL_PERSONS)
    assert (company["subject_type"], company["identifier"]) == ("legal_person", "91110000600037341L")
    assert business["subject_type"] == "individual_business"


@pytest.mark.parametrize(("word", "kind"), [("法人", "legal_person"), ("自然人", "natural_person"),
                                            ("个体工商户", "individual_business"), ("Natural_Person", "natural_person")])  # fmt: skip
def test_subject_types_are_read_in_chinese_or_english(word: str, kind: str) -> None:
    data = {"name": "张三", "subject_type": word}
    check(data)
    assert data["subject_type"] == kind


def test_a_subject_type_the_list_does_not_take_is_an_error() -> None:
    errors, _ = check(
        {"name": "张三", "identifier": ric("valid")[0], "subject_type": "自然人"}, LEGAL_PERSONS
    )
    assert errors == ["subject_type: this list does not take natural_person"]


def test_a_person_id_on_a_company_list_is_an_error_even_when_only_guessed() -> None:
    errors, _ = check({"name": "张三", "identifier": "110102199101010078"}, LEGAL_PERSONS)
    assert errors == ["subject_type: this list does not take natural_person"]


def test_a_guessed_organisation_type_the_list_does_not_take_is_a_warning() -> None:
    errors, warnings = check({"name": "示例合作社", "identifier": "91110000600037341L"}, PEOPLE)
    assert errors == []
    assert warnings == ["subject_type: this list does not take legal_person (guessed from the identifier)"]


def test_a_guessed_subject_type_stays_a_guess_when_validated_again() -> None:
    data = {"name": "示例有限公司", "identifier": "91110000600037341L"}
    first = check(data, PEOPLE)
    assert check(data, PEOPLE) == first
    assert (data["subject_type"], data["subject_type_guessed"]) == ("legal_person", True)


def test_minors_are_never_listed() -> None:
    child = ric("valid_after_normalisation")[0]  # born 2014-10-05
    data = {"name": "张小三", "identifier": child, "subject_type": "自然人", "decided_on": "2023-01-01"}
    errors, _ = check(data, PEOPLE)
    assert errors == [
        "identifier: the person is a minor (under 18 on the decision date); minors are never listed"
    ]


def test_an_adult_on_the_decision_date_is_accepted() -> None:
    data = {
        "name": "张三",
        "identifier": "110102199101010078",
        "subject_type": "自然人",
        "decided_on": "2023-01-01",
    }
    assert check(data, PEOPLE) == ([], [])
    assert data["identifier_kind"] == "person_id"


@pytest.mark.parametrize("code", ric("invalid"))
def test_bad_personal_id_numbers_are_reported_without_showing_the_number(code: str) -> None:
    # Two vectors (county code not in use in the birth year) are warnings in identifiers.py.
    data = {"name": "张三", "identifier": code, "subject_type": "自然人", "decided_on": code}
    errors, warnings = check(data, PEOPLE)
    assert any(m.startswith("identifier: ") for m in errors + warnings)
    assert not [m for m in errors + warnings if code.upper() in m.upper()]


def test_a_personal_id_in_the_wrong_column_is_masked_in_the_message() -> None:
    errors, _ = check({"name": "张三", "decided_on": "110102199101010078"})
    assert errors == ["decided_on: not a date: '1101**********0078'"]


def test_missing_required_fields_are_errors() -> None:
    errors, _ = check({"name": " "}, LEGAL_PERSONS)
    assert errors == ["name: required field is empty", "identifier: required field is empty"]


def test_a_field_already_rejected_as_a_cell_is_not_also_reported_missing() -> None:
    errors, _ = validate_row({"name": "示例有限公司"}, LEGAL_PERSONS, today=TODAY, invalid={"identifier"})
    assert errors == []


def test_a_removal_only_needs_to_say_whom_it_removes() -> None:
    data = {"identifier": "91110000600037341L", "action": "删除"}
    assert check(data, LEGAL_PERSONS) == ([], [])
    assert data["action"] == "remove"


def test_an_unknown_action_is_an_error() -> None:
    errors, _ = check({"name": "示例有限公司", "action": "maybe"})
    assert errors == ["action: unknown action (use add, update or remove): 'maybe'"]


def test_extra_fields_are_cleaned_by_type() -> None:
    schema = ListSchema(
        extra_fields=[
            FieldSpec("year", "评价年度", "year"),
            FieldSpec("fine", "罚款金额", "decimal"),
            FieldSpec("count", "次数", "integer"),
            FieldSpec("grade", "等级", "choice", choices=["A", "B"]),
        ]
    )
    data = {"name": "示例有限公司", "year": "2018年度", "fine": "1,234.50", "count": "3", "grade": "Ａ"}
    assert check(data, schema) == ([], [])
    assert (data["year"], data["fine"], data["count"], data["grade"]) == (2018, Decimal("1234.50"), 3, "A")


def test_bad_extra_values_are_errors() -> None:
    schema = ListSchema(
        extra_fields=[FieldSpec("year", type="year"), FieldSpec("grade", type="choice", choices=["A"])]
    )
    errors, _ = check({"name": "示例有限公司", "year": "18", "grade": "C"}, schema)
    assert errors == ["year: not a year: '18'", "grade: not one of A: 'C'"]


def test_cells_larger_than_the_limit_are_errors() -> None:
    limits = Limits(max_cell_bytes=1024)
    assert check_cell("reason", "字" * 400, limits) == (["reason: cell is larger than 1 KiB"], [])
    assert check_cell("reason", "字" * 300, limits) == ([], [])


def test_nul_bytes_are_errors() -> None:
    assert check_cell("name", "示例\x00有限公司", Limits()) == (["name: contains a NUL byte"], [])


@pytest.mark.parametrize(
    "value", ['=HYPERLINK("http://x")', "=1+1", "@SUM(A1:A2)", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0"]
)
def test_formula_like_cells_are_kept_with_a_warning(value: str) -> None:
    assert check_cell("name", value, Limits()) == (
        [],
        ["name: looks like a spreadsheet formula; kept as text"],
    )


@pytest.mark.parametrize("value", ["-", "-5.3", "+86 10 1234 5678", "@", "A-1 公司", "=", "— 无 —"])
def test_ordinary_cells_starting_with_signs_are_not_flagged(value: str) -> None:
    assert check_cell("name", value, Limits()) == ([], [])


def row(line_no: int, **data: object) -> RowResult:
    return RowResult(line_no, raw={}, data=dict(data))


def test_duplicates_are_found_by_identifier_or_name_and_reference() -> None:
    rows = [
        row(2, identifier="91110000600037341L", reference="京罚〔2023〕1号"),
        row(3, identifier="91110000600037341L", reference="京罚〔2023〕2号"),
        row(4, identifier="91110000600037341L", reference="京罚〔2023〕1号"),
        row(5, name="示例 有限公司"),
        row(6, name="示例有限公司"),
        row(7),
    ]
    assert find_duplicates(rows) == {4: 2, 6: 5}
