"""Identifier handling, checked against every row of the shared test vectors."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from lists.identifiers import (
    LEGACY_REG,
    ORG_CODE,
    PERSON_ID,
    USCC,
    classify_identifier,
    is_minor,
    mask_person_id,
    person_id_hash,
)

DATA = Path(__file__).resolve().parent.parent / "data"
TODAY = dt.date(2026, 11, 22)


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("row", _rows("uscc_vectors.csv"), ids=lambda r: r["code"])
def test_every_uscc_vector_is_judged_as_expected(row: dict[str, str]) -> None:
    result = classify_identifier(row["code"], expect="organisation", today=TODAY)
    expected = row["expected"]
    if expected.startswith("valid"):
        assert result.kind == USCC and not result.errors and not result.warnings
    elif expected == "checksum_fails_but_real":
        # Real early pilot codes fail GB 32100's check digit: kept, with a warning.
        assert result.kind == USCC and not result.errors and result.warnings
    elif "InvalidChecksum" in row["expected_reason"] or "checksum" in row["expected_reason"]:
        assert not result.errors and result.warnings, "a bad check digit is a warning on ingest"
    elif "allows letters" in row["expected_reason"]:
        # GB 32100 allows letters in positions 1-2 (stdnum does not): never accepted clean.
        assert not result.is_valid or result.warnings
    else:
        assert not result.is_valid


@pytest.mark.parametrize("row", _rows("ric_vectors.csv"), ids=lambda r: r["code"])
def test_every_personal_id_vector_is_judged_as_expected(row: dict[str, str]) -> None:
    result = classify_identifier(row["code"], expect=PERSON_ID, today=TODAY)
    expected = row["expected"]
    if expected.startswith("valid"):
        assert result.kind == PERSON_ID and not result.errors
    elif expected == "parse_only":
        assert result.errors, "a birth date in the future is refused"
    elif "county" in row["expected_reason"]:
        # stdnum's county history is stricter than real-world data: flagged, not refused.
        assert result.errors or result.warnings
    else:
        assert result.errors


def test_full_width_spaced_and_lower_case_identifiers_normalise() -> None:
    assert classify_identifier("９１１１０００ ０６０００３７３４１ｌ").value == "91110000600037341L"
    assert classify_identifier("9111-0000-6000-3734-1l").kind == USCC


def test_shorter_identifiers_are_secondary_kinds() -> None:
    assert classify_identifier("360424586585180", expect="organisation").kind == LEGACY_REG
    assert classify_identifier("MA758H952").kind == ORG_CODE
    assert classify_identifier("MA758H95-2").kind == ORG_CODE
    assert classify_identifier("hello").kind is None


def test_person_id_is_hashed_with_a_key_and_masked_for_display(settings) -> None:  # type: ignore[no-untyped-def]
    number = "11010219910101007X"
    masked = mask_person_id(number)
    assert masked == "1101**********007X"
    digest = person_id_hash(number.lower())
    assert digest == person_id_hash(number) and number not in digest and len(digest) == 64
    settings.PERSON_ID_HASH_KEY = "another key"
    assert person_id_hash(number) != digest


def test_fifteen_digit_id_hashes_like_its_eighteen_digit_form() -> None:
    assert person_id_hash("350303900203307") == person_id_hash("350303199002033073")


def test_minors_are_detected_on_the_decision_date() -> None:
    assert is_minor("44011320141005001X", on=dt.date(2026, 1, 1))
    assert not is_minor("44011320141005001X", on=dt.date(2032, 10, 5))


def test_legacy_tax_numbers_may_end_in_a_letter() -> None:
    assert classify_identifier("36072359378986X", expect="organisation").kind == LEGACY_REG


def _stdnum_judgement(value: str) -> str:
    """Return how python-stdnum (the reference) judges a USCC: valid, checksum or format."""
    from stdnum.cn import uscc
    from stdnum.exceptions import InvalidChecksum, ValidationError

    try:
        uscc.validate(value)
    except InvalidChecksum:
        return "checksum"
    except ValidationError:
        return "format"
    return "valid"


def _fast_judgement(value: str) -> str:
    from lists.identifiers import compact_identifier, uscc_check_digit

    value = compact_identifier(value)
    result = classify_identifier(value, expect="organisation", today=TODAY)
    if result.kind != USCC or result.errors or not value[:8].isdigit():
        return "format"
    assert (uscc_check_digit(value) == value[17]) is (not result.warnings)
    return "checksum" if result.warnings else "valid"


@pytest.mark.parametrize("row", _rows("uscc_vectors.csv"), ids=lambda r: r["code"])
def test_fast_uscc_check_agrees_with_stdnum_on_the_vectors(row: dict[str, str]) -> None:
    from stdnum.cn import uscc

    value = uscc.compact(row["code"])
    if len(value) == 18 and value[:8].isdigit():  # stdnum's own domain; letters in 1-2 differ on purpose
        assert _fast_judgement(value) == _stdnum_judgement(value)


def test_fast_uscc_check_agrees_with_stdnum_on_random_codes() -> None:
    import random

    from stdnum.cn import uscc

    from lists.identifiers import uscc_check_digit

    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    rng = random.Random(20261122)
    for _ in range(10_000):
        body = "".join(rng.choices("0123456789", k=8) + rng.choices(alphabet, k=9))
        last = uscc.calc_check_digit(body) if rng.random() < 0.5 else rng.choice(alphabet)
        code = body + last
        assert uscc_check_digit(code) == uscc.calc_check_digit(body)
        assert _fast_judgement(code) == _stdnum_judgement(code), code
        # Letters in positions 1-2 (GB 32100 allows them): the same arithmetic as stdnum's.
        lettered = rng.choice(alphabet[10:]) + code[1:]
        assert uscc_check_digit(lettered) == uscc.calc_check_digit(lettered[:17])
