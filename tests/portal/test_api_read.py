"""Read endpoints, the restriction check, and that no answer ever holds a full personal ID number."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from lists.models import ApiRequestLog, CreditList, Measure
from tests.factories import SubjectFactory
from tests.portal.api_helpers import FULL_ID, auth, end_listing, make_key, make_person, publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def screener():  # type: ignore[no-untyped-def]
    return make_key(["screen"])[1]


def _triggered_measure(list_code: str = "TAX_MAJOR_VIOLATION") -> Measure:
    return (
        Measure.objects.current()
        .filter(triggered_by__code=list_code, kind="punishment")
        .order_by("code")
        .first()
    )


def test_the_api_root_links_to_the_docs_and_every_resource(client) -> None:  # type: ignore[no-untyped-def]
    root = client.get("/api/v1/")
    links = root.json()["links"]
    assert root.status_code == 200
    assert links["docs"] == "http://testserver/api/v1/docs/"
    assert links["changes"] == "http://testserver/api/v1/changes"
    # Anyone may read these; watchlists and webhooks need an integrator's key.
    for key in ("docs", "schema", "agencies", "lists", "measures", "subjects", "listings", "changes"):
        assert client.get(links[key]).status_code == 200, key
    assert client.get(links["webhooks"]).status_code in (401, 403)


def test_agencies_lists_and_measures_are_listed(client) -> None:  # type: ignore[no-untyped-def]
    agencies = client.get("/api/v1/agencies").json()
    lists = client.get("/api/v1/lists").json()
    measures = client.get("/api/v1/measures").json()
    assert {"code", "name_zh"} <= set(agencies[0])
    assert all(item["code"] for item in lists) and lists[0]["legal_basis"] is not None
    assert measures and {"code", "legal_basis", "triggered_by", "kind"} <= set(measures[0])


def test_subject_search_finds_by_name_and_identifier(client) -> None:  # type: ignore[no-untyped-def]
    subject = publish(subject=SubjectFactory(name="深圳市华盛达科技有限公司")).subject
    publish(subject=SubjectFactory(name="北京某某贸易有限公司"))
    by_name = client.get("/api/v1/subjects", {"q": "深圳市华盛达科技有限公司"}).json()
    by_id = client.get("/api/v1/subjects", {"q": subject.uscc}).json()
    assert by_name["results"][0]["id"] == subject.pk
    assert {"id", "name", "identifier", "aliases", "kind"} <= set(by_name["results"][0])
    assert [hit["id"] for hit in by_id["results"]] == [subject.pk]
    unlisted = SubjectFactory(name="上海无记录咨询有限公司")
    assert client.get("/api/v1/subjects", {"q": unlisted.name}).json()["results"] == []
    assert (
        client.get("/api/v1/subjects", {"q": unlisted.name, "status": "all"}).json()["results"][0]["id"]
        == unlisted.pk
    )


def test_subject_detail_shows_in_force_listings_with_provenance_and_restrictions(client) -> None:  # type: ignore[no-untyped-def]
    listing = publish()
    ended = publish(subject=listing.subject)
    end_listing(ended)
    body = client.get(f"/api/v1/subjects/{listing.subject_id}").json()
    assert [item["id"] for item in body["listings"]] == [listing.pk]
    provenance = body["listings"][0]
    assert {
        "agency",
        "list",
        "reference",
        "first_batch",
        "first_seen_at",
        "last_seen_at",
        "last_changed_at",
    } <= set(provenance)
    assert body["restrictions"] and all(r["listing"] == listing.pk for r in body["restrictions"])


def test_listings_filter_by_list_and_status_and_page_by_cursor(client, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    listings = [publish() for _ in range(3)]
    end_listing(listings[0])
    with django_assert_max_num_queries(6):
        first = client.get(
            "/api/v1/listings", {"list": "TAX_MAJOR_VIOLATION", "status": "active", "limit": 1}
        ).json()
    second = client.get(first["next"]).json()
    seen = [first["results"][0]["id"], second["results"][0]["id"]]
    assert seen == [listings[1].pk, listings[2].pk]
    since = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    assert client.get("/api/v1/listings", {"changed_since": since}).json()["results"] == []
    # By list or agency alone: listings in force and ended ones, in two indexes (see Listing).
    every = [listing.pk for listing in listings]
    by_list = client.get("/api/v1/listings", {"list": "TAX_MAJOR_VIOLATION"}).json()["results"]
    agency = listings[0].credit_list.agency.code
    by_agency = client.get("/api/v1/listings", {"agency": agency}).json()["results"]
    repaired = {"list": "TAX_MAJOR_VIOLATION", "status": "repaired"}
    ended = client.get("/api/v1/listings", repaired).json()["results"]
    assert [row["id"] for row in by_list] == every
    assert [row["id"] for row in by_agency] == every
    assert [row["id"] for row in ended] == [listings[0].pk]


def test_changed_since_takes_any_offset_python_accepts_and_rejects_times_out_of_range(client) -> None:  # type: ignore[no-untyped-def]
    listing = publish()
    # PostgreSQL refuses offsets beyond ±15:59; the same instants written in UTC filter alike.
    an_hour_ago = (timezone.now() - dt.timedelta(hours=1)).astimezone(
        dt.timezone(-dt.timedelta(hours=19, minutes=49))
    )
    in_an_hour = (timezone.now() + dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=23)))
    found = client.get("/api/v1/listings", {"changed_since": an_hour_ago.isoformat()})
    assert [row["id"] for row in found.json()["results"]] == [listing.pk]
    assert client.get("/api/v1/listings", {"changed_since": in_an_hour.isoformat()}).json()["results"] == []
    out_of_range = client.get("/api/v1/listings", {"changed_since": "0001-01-01T00:00:00+23:59"})
    assert out_of_range.status_code == 400
    assert "changed_since" in out_of_range.json()


def test_check_answers_restricted_with_legal_basis_and_until(client, screener) -> None:  # type: ignore[no-untyped-def]
    listing = publish()
    measure = _triggered_measure()
    body = client.get(
        "/api/v1/check", {"identifier": listing.subject.uscc, "measure": measure.code}, **auth(screener)
    ).json()
    assert body["outcome"] == "restricted" and body["allowed"] is False
    assert body["restrictions"][0]["measure"] == measure.code
    assert body["restrictions"][0]["legal_basis"] == measure.legal_basis
    assert body["listings"][0]["id"] == listing.pk
    assert body["until"] == body["restrictions"][0]["until"]


def test_check_answers_allowed_after_repair_and_for_unknown_subjects(client, screener) -> None:  # type: ignore[no-untyped-def]
    listing = publish()
    end_listing(listing)
    measure = _triggered_measure()
    after = client.get(
        "/api/v1/check", {"subject": listing.subject_id, "measure": measure.code}, **auth(screener)
    )
    unknown = client.get("/api/v1/check", {"identifier": "91110000MA00000000"}, **auth(screener))
    assert after.json()["outcome"] == "allowed"
    assert unknown.json()["outcome"] == "allowed" and unknown.json()["subject"] is None


def test_checks_are_counted_per_measure(client, screener) -> None:  # type: ignore[no-untyped-def]
    listing = publish()
    measure = _triggered_measure()
    for _ in range(3):
        client.get(
            "/api/v1/check", {"identifier": listing.subject.uscc, "measure": measure.code}, **auth(screener)
        )
    logs = ApiRequestLog.objects.filter(endpoint="check", measure=measure)
    assert logs.count() == 3
    assert {log.outcome for log in logs} == {"restricted"}
    assert all(log.data_version > 0 for log in logs)
    _, operator = make_key(["operator"])
    assert client.get("/api/v1/check/counts", **auth(screener)).status_code == 403
    counts = client.get("/api/v1/check/counts", **auth(operator)).json()
    assert counts == [{"measure": measure.code, "checks": 3, "restricted": 3}]


def test_check_refuses_an_unknown_measure_and_a_malformed_identifier(client, screener) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/check", {"subject": 1, "measure": "NOPE"}, **auth(screener))
    typo = client.get("/api/v1/check", {"identifier": "11010519800101123"}, **auth(screener))
    bad_check_digit = client.get("/api/v1/check", {"identifier": "110105198001011230"}, **auth(screener))
    assert (response.status_code, typo.status_code, bad_check_digit.status_code) == (400, 400, 400)


def test_a_person_is_found_by_full_id_but_never_shown_with_it(client, screener) -> None:  # type: ignore[no-untyped-def]
    person, pid = make_person(7)
    listing = publish(subject=person, credit_list=CreditList.objects.get(code="SPC_DEFAULTER"))
    check = client.get("/api/v1/check", {"identifier": pid}, **auth(screener))
    screen = client.post(
        "/api/v1/screen",
        {"queries": [{"identifier": pid}]},
        content_type="application/json",
        **auth(screener),
    )
    assert check.json()["subject"]["id"] == person.pk
    assert check.json()["subject"]["identifier"] == person.person_id_masked
    assert screen.json()["results"][0]["candidates"][0]["subject_id"] == person.pk
    assert listing.pk in [item["id"] for item in check.json()["listings"]]
    logged = json.dumps([log.query for log in ApiRequestLog.objects.all()])
    assert pid not in logged


def test_no_response_contains_a_full_personal_id_number(client, screener) -> None:  # type: ignore[no-untyped-def]
    person, pid = make_person(11, name="李娜")
    court = CreditList.objects.get(code="SPC_DEFAULTER")
    listing = publish(subject=person, credit_list=court)
    publish()
    urls = [
        "/api/v1/subjects?q=李娜&status=all",
        f"/api/v1/subjects?q={pid}",
        f"/api/v1/subjects/{person.pk}",
        "/api/v1/listings",
        f"/api/v1/listings?subject={person.pk}",
        "/api/v1/changes?after=0",
        f"/api/v1/check?identifier={pid}",
        f"/api/v1/check?subject={person.pk}",
    ]
    bodies = [client.get(url, **auth(screener)).content.decode() for url in urls]
    bodies.append(
        client.post(
            "/api/v1/screen",
            {"queries": [{"identifier": pid}, {"name": "李娜"}]},
            content_type="application/json",
            **auth(screener),
        ).content.decode()
    )
    assert listing.pk
    for url, body in zip([*urls, "screen"], bodies, strict=True):
        assert pid not in body, url
        assert not FULL_ID.search(body), url
    assert person.person_id_masked in bodies[2]
