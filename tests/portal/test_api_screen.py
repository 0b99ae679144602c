"""Batch screening: exact identifiers, name features, thresholds, determinism."""

from __future__ import annotations

import pytest

from lists.models import ApiRequestLog, CreditList, Subject, SubjectType
from lists.services.screening import ScreenQuery, screen
from lists.services.subjects import reindex_subject_names
from tests.factories import SubjectFactory, valid_uscc
from tests.portal.api_helpers import auth, make_key, make_person, publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def screener():  # type: ignore[no-untyped-def]
    return make_key(["screen"])[1]


def _post(client, secret, body):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/screen", body, content_type="application/json", **auth(secret))


def _bank() -> Subject:
    subject = SubjectFactory(
        name="平安银行股份有限公司", aliases=["平安银行"], name_en="Ping An Bank Co., Ltd.", index_names=False
    )
    reindex_subject_names(subject)
    return subject


def test_an_identifier_matches_exactly_and_only_its_subject(client, screener) -> None:  # type: ignore[no-untyped-def]
    target = SubjectFactory(name="北京同名科技有限公司")
    SubjectFactory(name="北京同名科技有限公司")  # same name, different code
    body = _post(client, screener, {"queries": [{"identifier": target.uscc, "name": target.name}]}).json()
    candidates = body["results"][0]["candidates"]
    assert [c["subject_id"] for c in candidates] == [target.pk]
    assert candidates[0]["score"] == 1.0 and candidates[0]["matched"][0] == "identifier"


def test_an_unknown_identifier_matches_nothing(client, screener) -> None:  # type: ignore[no-untyped-def]
    SubjectFactory()
    near = valid_uscc(999_999)
    body = _post(client, screener, {"queries": [{"identifier": near}]}).json()
    assert body["results"][0]["candidates"] == []


def test_names_match_by_exact_name_alias_english_core_and_pinyin() -> None:
    bank = _bank()
    queries = [
        ScreenQuery(name="平安银行股份有限公司"),
        ScreenQuery(name="平安银行"),
        ScreenQuery(name="Ping An Bank Co., Ltd."),
        ScreenQuery(name="深圳平安银行有限公司"),
        ScreenQuery(name="pinganyinhang"),
        ScreenQuery(name="完全无关的名字有限公司"),
    ]
    results = screen(queries, threshold=0.5).results
    features = [r[0].matched if r else [] for r in results]
    assert features[0][0] == "exact_name"
    assert features[1][0] == "alias"
    assert features[2][0] == "english"
    assert features[3] == ["core_name"]
    assert "pinyin" in features[4]
    assert features[5] == []
    assert all(r[0].subject_id == bank.pk for r in results[:5])
    assert results[0][0].score > results[3][0].score > results[4][0].score


def test_the_threshold_drops_weak_candidates() -> None:
    _bank()
    weak = screen([ScreenQuery(name="pinganyinhang")], threshold=0.9).results[0]
    assert weak == []


def test_candidates_carry_active_listings_and_restrictions(client, screener) -> None:  # type: ignore[no-untyped-def]
    listing = publish()
    body = _post(client, screener, {"queries": [{"name": listing.subject.name}]}).json()
    candidate = body["results"][0]["candidates"][0]
    assert candidate["listings"][0]["id"] == listing.pk
    assert candidate["restrictions"] and candidate["restrictions"][0]["listing_id"] == listing.pk
    assert body["data_version"] >= 1


def test_a_list_off_the_public_site_shows_neither_its_listings_nor_its_measures(client, screener) -> None:  # type: ignore[no-untyped-def]
    subject = SubjectFactory(name="南京隐藏筛查科技有限公司")
    shown = publish(subject=subject, credit_list=CreditList.objects.get(code="TAX_MAJOR_VIOLATION"))
    hidden = publish(subject=subject, credit_list=CreditList.objects.get(code="SPC_DEFAULTER"))
    assert hidden.restrictions.exists()
    CreditList.objects.filter(code="SPC_DEFAULTER").update(is_public=False)
    candidate = _post(client, screener, {"queries": [{"name": subject.name}]}).json()["results"][0][
        "candidates"
    ][0]
    assert [x["id"] for x in candidate["listings"]] == [shown.pk]
    assert candidate["restrictions"] and {r["listing_id"] for r in candidate["restrictions"]} == {shown.pk}


def test_each_of_many_candidates_carries_its_own_listings_and_restrictions(client, screener) -> None:  # type: ignore[no-untyped-def]
    listings = [publish(subject=SubjectFactory(name="杭州同名多家科技有限公司")) for _ in range(12)]
    body = _post(client, screener, {"queries": [{"name": "杭州同名多家科技有限公司"}], "limit": 50}).json()
    candidates = body["results"][0]["candidates"]
    assert [c["subject_id"] for c in candidates] == sorted(x.subject_id for x in listings)
    for candidate, listing in zip(candidates, sorted(listings, key=lambda x: x.subject_id), strict=True):
        assert [x["id"] for x in candidate["listings"]] == [listing.pk]
        assert {r["listing_id"] for r in candidate["restrictions"]} == {listing.pk}


def test_subject_type_and_region_narrow_the_candidates() -> None:
    company = SubjectFactory(name="王伟", region_code="440305")
    person, _ = make_person(3, name="王伟")
    by_type = screen([ScreenQuery(name="王伟", subject_type=SubjectType.NATURAL_PERSON)]).results[0]
    by_region = screen([ScreenQuery(name="王伟", region="44")]).results[0]
    assert [c.subject_id for c in by_type] == [person.pk]
    assert [c.subject_id for c in by_region] == [company.pk]


def test_the_same_request_on_the_same_data_gives_the_same_answer(client, screener) -> None:  # type: ignore[no-untyped-def]
    for n in range(6):
        SubjectFactory(name="杭州同名贸易有限公司", uscc=valid_uscc(500 + n))
    _bank()
    queries = [{"name": "杭州同名贸易有限公司"}, {"name": "平安银行"}, {"name": "tongming"}] * 5
    first = _post(client, screener, {"queries": queries, "limit": 4}).content
    second = _post(client, screener, {"queries": queries, "limit": 4}).content
    assert first == second
    ids = [
        c["subject_id"]
        for c in _post(client, screener, {"queries": queries[:1]}).json()["results"][0]["candidates"]
    ]
    assert ids == sorted(ids)


def test_a_thousand_queries_are_accepted_and_more_are_refused(client, screener) -> None:  # type: ignore[no-untyped-def]
    SubjectFactory(name="天津测试物流有限公司")
    ok = _post(client, screener, {"queries": [{"name": f"天津测试物流{n}有限公司"} for n in range(1000)]})
    too_many = _post(client, screener, {"queries": [{"name": "甲"}] * 1001})
    empty = _post(client, screener, {"queries": [{}]})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 1000
    assert too_many.status_code == 400 and empty.status_code == 400


def test_each_screening_request_is_logged_without_full_ids(client, screener) -> None:  # type: ignore[no-untyped-def]
    person, pid = make_person(5)
    _post(client, screener, {"queries": [{"identifier": pid}, {"name": "平安银行"}]})
    log = ApiRequestLog.objects.get(endpoint="screen")
    assert log.query["queries"] == 2 and log.results_count == 1
    assert pid not in str(log.query) and person.person_id_masked in str(log.query)
