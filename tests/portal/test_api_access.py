"""API keys, scopes, rate limits and quotas (real Redis)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.portal.api_helpers import auth, make_key

pytestmark = pytest.mark.django_db


def test_anonymous_clients_read_public_data(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/lists")
    assert response.status_code == 200
    assert any(item["code"] == "TAX_MAJOR_VIOLATION" for item in response.json())


def test_an_unknown_key_is_refused_with_401(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/lists", HTTP_AUTHORIZATION="Bearer xy_nope_nope")
    assert response.status_code == 401
    assert "WWW-Authenticate" in response


def test_a_revoked_key_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    from django.utils import timezone

    key, secret = make_key(["read"])
    key.revoked_at = timezone.now()
    key.save()
    assert client.get("/api/v1/lists", **auth(secret)).status_code == 401


def test_the_key_may_come_in_x_api_key(client) -> None:  # type: ignore[no-untyped-def]
    _, secret = make_key(["screen"])
    assert client.get("/api/v1/check?identifier=91110000000000001X", HTTP_X_API_KEY=secret).status_code == 200


def test_screening_and_checks_need_the_screen_scope(client) -> None:  # type: ignore[no-untyped-def]
    _, reader = make_key(["read"])
    _, screener = make_key(["screen"])
    body = {"queries": [{"name": "平安银行"}]}
    assert client.get("/api/v1/check?identifier=x").status_code == 401
    assert client.get("/api/v1/check?identifier=x", **auth(reader)).status_code == 403
    assert (
        client.post("/api/v1/screen", body, content_type="application/json", **auth(reader)).status_code
        == 403
    )
    assert (
        client.post("/api/v1/screen", body, content_type="application/json", **auth(screener)).status_code
        == 200
    )


def test_a_push_key_only_pushes_to_its_own_agencys_lists(client) -> None:  # type: ignore[no-untyped-def]
    from lists.models import CreditList

    tax = CreditList.objects.get(code="TAX_MAJOR_VIOLATION")
    other = CreditList.objects.exclude(agency=tax.agency).first()
    _, pusher = make_key(["push"], agency=tax.agency)
    _, reader = make_key(["read"])
    url = f"/api/v1/lists/{other.code}/batches"
    assert client.post(url, {}, **auth(reader)).status_code == 403
    assert client.post(url, {}, **auth(pusher)).status_code == 403


def test_the_rate_limit_answers_429_with_retry_after(client) -> None:  # type: ignore[no-untyped-def]
    _, secret = make_key(["read"], rate_per_minute=3)
    codes = [client.get("/api/v1/agencies", **auth(secret)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = client.get("/api/v1/agencies", **auth(secret))
    assert 1 <= int(response["Retry-After"]) <= 60


def test_the_daily_quota_counts_each_screened_query(client) -> None:  # type: ignore[no-untyped-def]
    _, secret = make_key(["screen"], quota_per_day=5)
    three = {"queries": [{"name": "甲公司"}, {"name": "乙公司"}, {"name": "丙公司"}]}
    first = client.post("/api/v1/screen", three, content_type="application/json", **auth(secret))
    second = client.post("/api/v1/screen", three, content_type="application/json", **auth(secret))
    assert (first.status_code, second.status_code) == (200, 429)
    assert int(second["Retry-After"]) > 60


def test_each_key_has_its_own_counters(client) -> None:  # type: ignore[no-untyped-def]
    _, a = make_key(["read"], rate_per_minute=1)
    _, b = make_key(["read"], rate_per_minute=1)
    assert client.get("/api/v1/agencies", **auth(a)).status_code == 200
    assert client.get("/api/v1/agencies", **auth(a)).status_code == 429
    assert client.get("/api/v1/agencies", **auth(b)).status_code == 200


@override_settings(XY_API_ANON_PER_MINUTE=2)
def test_anonymous_reads_share_a_low_rate_per_address(client) -> None:  # type: ignore[no-untyped-def]
    codes = [client.get("/api/v1/agencies").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


@override_settings(XY_API_ANON_PER_MINUTE=2)
def test_a_made_up_forwarded_address_does_not_escape_the_anonymous_rate(client) -> None:  # type: ignore[no-untyped-def]
    codes = [
        client.get("/api/v1/agencies", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").status_code for n in range(3)
    ]
    assert codes == [200, 200, 429]


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_without_redis_keyed_calls_fail_closed_and_anonymous_reads_go_on(client) -> None:  # type: ignore[no-untyped-def]
    _, secret = make_key(["read"])
    keyed = client.get("/api/v1/agencies", **auth(secret))
    assert keyed.status_code == 503
    assert keyed.json()["detail"].startswith("Quota service unavailable")
    assert client.get("/api/v1/agencies").status_code == 200


def test_an_agency_key_pushes_a_file_into_the_batch_pipeline(
    client, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    from django.core.files.uploadedfile import SimpleUploadedFile

    from lists.models import Batch, CreditList

    tax = CreditList.objects.get(code="TAX_MAJOR_VIOLATION")
    key, pusher = make_key(["push"], agency=tax.agency)
    upload = SimpleUploadedFile("list.csv", "名称,统一社会信用代码\n测试公司,91110000000000001X\n".encode())
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            f"/api/v1/lists/{tax.code}/batches", {"file": upload, "mode": "incremental"}, **auth(pusher)
        )
    assert response.status_code == 202, response.content
    batch = Batch.objects.get(pk=response.json()["id"])
    assert (batch.origin, batch.api_key_id, batch.status) == ("api", key.pk, "received")
    assert len(callbacks) == 1  # validation is enqueued; approval stays with agency staff
    status = client.get(f"/api/v1/lists/{tax.code}/batches/{batch.pk}", **auth(pusher))
    assert status.json()["status"] == "received"
