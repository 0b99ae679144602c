"""The staff area: sign-in, upload, batch pages, approval, rollback, permissions."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from agencies.models import AuditEvent, Membership
from agencies.roles import OPERATORS_GROUP
from lists.models import Batch, CreditList, Listing, PendingRecompute
from lists.services import batches
from portal.staff.views import safe_cell
from tests.factories import MembershipFactory, UserFactory, valid_uscc

pytestmark = pytest.mark.django_db
DATA = Path(__file__).resolve().parent.parent / "data" / "importers"
HEADER = "名称,统一社会信用代码,文书号,列入原因,决定日期\n"


def company_csv(*numbers: int, reason: str = "虚开增值税专用发票") -> bytes:
    rows = "".join(
        f"测试{n}贸易有限公司,{valid_uscc(n)},税稽罚〔2025〕{n}号,{reason},2025-03-01\n" for n in numbers
    )
    return (HEADER + rows).encode()


@pytest.fixture
def tax_list() -> CreditList:
    return CreditList.objects.get(code="TAX_MAJOR_VIOLATION")


@pytest.fixture
def other_list() -> CreditList:
    return CreditList.objects.exclude(agency__code="sta").first()


def member(credit_list: CreditList, role: str) -> Client:
    user = MembershipFactory(agency=credit_list.agency, role=role).user
    client = Client(REMOTE_ADDR="192.0.2.10")
    client.force_login(user)
    client.user = user  # type: ignore[attr-defined]
    return client


@pytest.fixture
def uploader(tax_list) -> Client:  # type: ignore[no-untyped-def]
    return member(tax_list, Membership.Role.UPLOADER)


@pytest.fixture
def approver(tax_list) -> Client:  # type: ignore[no-untyped-def]
    return member(tax_list, Membership.Role.APPROVER)


def upload(client: Client, credit_list: CreditList, payload: bytes, name: str = "list.csv", **extra: str):  # type: ignore[no-untyped-def]
    data = {
        "credit_list": credit_list.code,
        "mode": "snapshot",
        "file": SimpleUploadedFile(name, payload),
        **extra,
    }
    return client.post(reverse("staff:batch-upload"), data)


def uploaded(
    client: Client, credit_list: CreditList, payload: bytes, name: str = "list.csv", **extra: str
) -> Batch:
    response = upload(client, credit_list, payload, name, **extra)
    assert response.status_code == 302, response.content[:2000]
    batch = Batch.objects.latest("pk")
    return batches.process_batch(batch_id=batch.pk)  # what the Celery worker does


def test_staff_sign_in_and_out_are_audited(tax_list):
    user = MembershipFactory(agency=tax_list.agency).user
    client = Client(REMOTE_ADDR="192.0.2.1")
    assert client.get(reverse("staff:dashboard")).status_code == 302
    response = client.post(
        reverse("staff:login"), {"username": user.username, "password": "correct-horse-battery"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("staff:dashboard")
    assert AuditEvent.objects.get(action="staff.login").ip_address == "192.0.2.1"
    client.post(reverse("staff:logout"))
    assert AuditEvent.objects.filter(action="staff.logout", actor=user).exists()


def test_the_dashboard_shows_only_my_agencies_lists(
    uploader, tax_list, other_list, django_assert_max_num_queries
):
    with django_assert_max_num_queries(10):
        response = uploader.get(reverse("staff:dashboard"))
    assert tax_list.code in response.content.decode()
    assert other_list.code not in response.content.decode()


def test_upload_stores_the_batch_and_enqueues_validation(
    uploader, tax_list, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(uploader, tax_list, company_csv(1, 2))
    batch = Batch.objects.get()
    assert response["Location"] == reverse("staff:batch-detail", args=[batch.pk])
    assert len(callbacks) == 1 and batch.uploaded_by == uploader.user
    assert AuditEvent.objects.get(action="batch.receive").ip_address == "192.0.2.10"


def test_the_gbk_a_grade_taxpayer_file_uploads_unchanged():
    a_grade = CreditList.objects.get(code="TAX_A_GRADE")
    client = member(a_grade, Membership.Role.UPLOADER)
    batch = uploaded(
        client, a_grade, (DATA / "jiangxi_A_level_sample_150rows_GBK.csv").read_bytes(), "jiangxi.csv"
    )
    assert batch.counts["rows"] == 150 and batch.status in ("ready", "needs_mapping")
    page = client.get(reverse("staff:batch-detail", args=[batch.pk])).content.decode()
    assert (
        "九江修水万景电力开发有限公司"
        in client.get(reverse("staff:batch-rows", args=[batch.pk]) + "?show=add").content.decode()
    )
    assert "150" in page


def test_the_keyvalue_file_shows_one_clear_message(uploader, tax_list):
    payload = (DATA / "qinghai_tax_blacklist_sample_public_records_keyvalue.csv").read_bytes()
    batch = uploaded(uploader, tax_list, payload, "qinghai.csv")
    page = uploader.get(reverse("staff:batch-detail", args=[batch.pk])).content.decode()
    assert batch.status == "failed" and "key/value" in page
    declared = uploaded(uploader, tax_list, payload, "qinghai.csv", file_format="keyvalue")
    assert declared.status in ("ready", "needs_mapping") and declared.counts["rows"] == 13


def test_the_szse_xlsx_uploads():
    register = CreditList.objects.get(code="TAX_A_GRADE")
    client = member(register, Membership.Role.UPLOADER)
    batch = uploaded(
        client, register, (DATA / "szse_A股列表_public_split_rewritten.xlsx").read_bytes(), "szse.xlsx"
    )
    assert batch.file_format == "xlsx" and batch.counts["rows"] == 270


def test_an_oversized_upload_is_refused_in_the_form(uploader, tax_list):
    with override_settings(UPLOAD_MAX_BYTES=50):
        response = upload(uploader, tax_list, company_csv(1, 2, 3))
    assert response.status_code == 200 and "files of at most" in response.content.decode()
    assert not Batch.objects.exists()


def test_the_batch_page_shows_counts_problems_and_progress(uploader, tax_list, django_assert_max_num_queries):
    batch = uploaded(uploader, tax_list, company_csv(1, 2) + "坏公司,BAD,x,y,2025-01-01\n".encode())
    with django_assert_max_num_queries(15):
        page = uploader.get(reverse("staff:batch-detail", args=[batch.pk])).content.decode()
    assert "identifier" in page
    assert reverse("staff:batch-problems", args=[batch.pk]) in page
    status = uploader.get(reverse("staff:batch-status", args=[batch.pk])).json()
    assert status["done"] and status["counts"]["invalid"] == 1 and status["progress"] == 100


def test_a_processing_batch_page_refreshes_itself(uploader, tax_list):
    upload(uploader, tax_list, company_csv(1))
    batch = Batch.objects.get()
    page = uploader.get(reverse("staff:batch-detail", args=[batch.pk])).content.decode()
    assert 'http-equiv="refresh"' in page and "status.json" in page


def test_problems_csv_is_safe_against_formula_injection(uploader, tax_list):
    payload = (HEADER + "=cmd|' /C calc'!A0,BAD,+1,@SUM(1),2025-01-01\n").encode()
    batch = uploaded(uploader, tax_list, payload)
    response = uploader.get(reverse("staff:batch-problems", args=[batch.pk]))
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "line"
    for cell in rows[1]:
        assert not cell.startswith(("=", "+", "-", "@"))
    assert safe_cell("-2") == "'-2" and safe_cell("ok") == "ok"


def test_the_diff_drill_down_shows_changes_field_by_field(
    uploader, approver, tax_list, django_assert_max_num_queries
):
    first = uploaded(uploader, tax_list, company_csv(1, 2))
    batches.publish_batch(batch_id=first.pk, approver=approver.user)
    second = uploaded(
        uploader, tax_list, company_csv(1, 3) + company_csv(2, reason="新事由")[len(HEADER.encode()) :]
    )
    with django_assert_max_num_queries(10):
        page = uploader.get(reverse("staff:batch-rows", args=[second.pk]) + "?show=change").content.decode()
    assert "新事由" in page and "<del>" in page
    added = uploader.get(reverse("staff:batch-rows", args=[second.pk]) + "?show=add").content.decode()
    assert "测试3贸易有限公司" in added


def test_uncertain_mapping_is_confirmed_by_the_uploader(uploader, tax_list):
    payload = f"企业名称XX,统一社会信用代码,文书号\n测试公司,{valid_uscc(5)},税1号\n".encode()
    batch = uploaded(uploader, tax_list, payload)
    assert batch.status == "needs_mapping"
    assert (
        "请确认 please confirm"
        in uploader.get(reverse("staff:batch-detail", args=[batch.pk])).content.decode()
    )
    with pytest.raises(batches.BatchError):
        batches.publish_batch(batch_id=batch.pk, waived_by="test")
    columns = [c["header"] for c in batch.header_mapping["columns"]]
    data = {f"col_{i}": f for i, f in enumerate(["name", "identifier", "reference"])}
    assert len(columns) == 3
    response = uploader.post(reverse("staff:batch-mapping", args=[batch.pk]), data)
    assert response.status_code == 302
    batch.refresh_from_db()
    assert batch.header_mapping["confirmed"] and batch.header_mapping["overrides"]["企业名称XX"] == "name"
    batch = batches.process_batch(batch_id=batch.pk)
    assert batch.status == "ready" and batch.counts["add"] == 1


def test_an_approver_publishes_and_the_uploader_cannot(uploader, approver, tax_list):
    batch = uploaded(uploader, tax_list, company_csv(1))
    page = uploader.get(reverse("staff:batch-detail", args=[batch.pk])).content.decode()
    assert 'id="publish"' not in page
    assert uploader.post(reverse("staff:batch-publish", args=[batch.pk])).status_code == 403
    assert 'id="publish"' in approver.get(reverse("staff:batch-detail", args=[batch.pk])).content.decode()
    assert approver.post(reverse("staff:batch-publish", args=[batch.pk])).status_code == 302
    batch.refresh_from_db()
    assert batch.status == "published" and batch.approved_by == approver.user
    assert Listing.objects.in_force().filter(credit_list=tax_list).count() == 1
    assert AuditEvent.objects.get(action="batch.publish").ip_address == "192.0.2.10"


def test_a_big_batch_page_says_its_measures_are_being_recorded_until_they_are(
    uploader, approver, tax_list, monkeypatch, django_capture_on_commit_callbacks, admin_client
):
    from lists import tasks
    from lists.services.batches import publishing

    monkeypatch.setattr(publishing, "INLINE_MEASURES_MAX", 1)  # as if the batch had a million rows
    batch = uploaded(uploader, tax_list, company_csv(1, 2))
    with django_capture_on_commit_callbacks():
        assert approver.post(reverse("staff:batch-publish", args=[batch.pk])).status_code == 302
    page = uploader.get(reverse("staff:batch-detail", args=[batch.pk])).content.decode()
    assert 'id="batch-measures"' in page and "being recorded since" in page
    listed = admin_client.get("/admin/lists/pendingrecompute/").content.decode()
    assert "publication" in listed, "operators see what is still being recorded"
    tasks.apply_batch_measures(batch.pk, "batch_removed", PendingRecompute.objects.get(batch=batch).pk)
    page = uploader.get(reverse("staff:batch-detail", args=[batch.pk])).content.decode()
    assert 'id="batch-measures"' not in page


def test_an_uploader_who_is_also_approver_still_needs_a_second_person(tax_list):
    client = member(tax_list, Membership.Role.UPLOADER)
    Membership.objects.create(user=client.user, agency=tax_list.agency, role=Membership.Role.APPROVER)
    batch = uploaded(client, tax_list, company_csv(1))
    client.post(reverse("staff:batch-publish", args=[batch.pk]))
    batch.refresh_from_db()
    assert batch.status == "ready"


def test_reject_and_rollback_through_the_pages(uploader, approver, tax_list):
    rejected = uploaded(uploader, tax_list, company_csv(9))
    approver.post(reverse("staff:batch-reject", args=[rejected.pk]), {"reason": "wrong file"})
    rejected.refresh_from_db()
    assert rejected.status == "rejected"
    batch = uploaded(uploader, tax_list, company_csv(1))
    approver.post(reverse("staff:batch-publish", args=[batch.pk]))
    assert approver.get(reverse("staff:batch-rollback", args=[batch.pk])).status_code == 200
    approver.post(reverse("staff:batch-rollback", args=[batch.pk]), {})  # not confirmed: nothing happens
    batch.refresh_from_db()
    assert batch.status == "published"
    approver.post(reverse("staff:batch-rollback", args=[batch.pk]), {"confirm": "on"})
    batch.refresh_from_db()
    assert batch.status == "rolled_back"
    assert not Listing.objects.in_force().filter(credit_list=tax_list).exists()


def test_staff_of_another_agency_cannot_see_or_act(uploader, approver, tax_list, other_list):
    batch = uploaded(uploader, tax_list, company_csv(1))
    outsider = member(other_list, Membership.Role.ADMIN)
    for name in ("batch-detail", "batch-status", "batch-rows", "batch-problems", "batch-rollback"):
        assert outsider.get(reverse(f"staff:{name}", args=[batch.pk])).status_code == 404, name
    for name in ("batch-publish", "batch-reject", "batch-mapping", "batch-rollback"):
        assert outsider.post(reverse(f"staff:{name}", args=[batch.pk]), {"confirm": "on"}).status_code == 404
    assert outsider.get(reverse("staff:list-template", args=[tax_list.code])).status_code == 404
    response = upload(outsider, tax_list, company_csv(2))
    assert response.status_code == 200 and Batch.objects.count() == 1  # not a choice in the form
    batch.refresh_from_db()
    assert batch.status == "ready"


def test_an_uploader_cannot_roll_back(uploader, approver, tax_list):
    batch = uploaded(uploader, tax_list, company_csv(1))
    approver.post(reverse("staff:batch-publish", args=[batch.pk]))
    assert (
        uploader.post(reverse("staff:batch-rollback", args=[batch.pk]), {"confirm": "on"}).status_code == 403
    )


def test_operators_see_every_list(tax_list, other_list):
    user = UserFactory()
    user.groups.add(Group.objects.get_or_create(name=OPERATORS_GROUP)[0])
    client = Client()
    client.force_login(user)
    page = client.get(reverse("staff:dashboard")).content.decode()
    assert tax_list.code in page and other_list.code in page


def test_the_list_template_has_chinese_and_english_headers_and_round_trips(uploader, tax_list):
    response = uploader.get(reverse("staff:list-template", args=[tax_list.code]))
    header = response.content.decode("utf-8-sig").splitlines()[0]
    assert "名称(name)" in header and "统一社会信用代码(identifier)" in header
    columns = header.split(",")
    row = {
        "名称(name)": "模板测试有限公司",
        "统一社会信用代码(identifier)": valid_uscc(77),
        "文书号(reference)": "税1号",
    }
    payload = (header + "\n" + ",".join(row.get(c, "") for c in columns) + "\n").encode("utf-8-sig")
    batch = uploaded(uploader, tax_list, payload, "template.csv")
    assert batch.status == "ready", batch.header_mapping
    assert batch.counts["add"] == 1


def test_forms_need_csrf(uploader, tax_list):
    client = Client(enforce_csrf_checks=True)
    client.force_login(uploader.user)
    response = client.post(reverse("staff:batch-upload"), {"credit_list": tax_list.code})
    assert response.status_code == 403


def test_a_big_batch_is_published_and_rolled_back_in_the_background_while_its_page_follows(
    uploader, approver, tax_list, monkeypatch, django_capture_on_commit_callbacks
):
    """A million rows take longer than a web request may (gunicorn kills it at 30 s)."""
    from lists import tasks
    from lists.services.batches import queued

    monkeypatch.setattr(queued, "IN_REQUEST_ROWS", 0)  # as if the batch had a million rows
    batch = uploaded(uploader, tax_list, company_csv(1, 2))
    detail, status = (reverse(f"staff:{name}", args=[batch.pk]) for name in ("batch-detail", "batch-status"))
    with django_capture_on_commit_callbacks():
        response = approver.post(reverse("staff:batch-publish", args=[batch.pk]), follow=True)
    page = response.content.decode()
    assert "published in the background" in page and 'id="publish"' not in page
    assert 'id="batch-progress" hidden' not in page and "waiting for a worker" in page
    assert approver.get(status).json()["done"] is False
    assert not Listing.objects.in_force().filter(credit_list=tax_list).exists()
    assert 'id="batch-late"' not in page
    Batch.objects.filter(pk=batch.pk).update(queued_at=timezone.now() - dt.timedelta(minutes=11))
    assert "the worker may be down" in approver.get(detail).content.decode()

    tasks.publish_batch(batch.pk)
    assert approver.get(status).json()["done"] is True
    assert 'id="rollback"' in approver.get(detail).content.decode()
    with django_capture_on_commit_callbacks():
        response = approver.post(
            reverse("staff:batch-rollback", args=[batch.pk]), {"confirm": "on"}, follow=True
        )
    page = response.content.decode()
    assert "rolled back in the background" in page and 'id="rollback"' not in page
    assert Listing.objects.in_force().filter(credit_list=tax_list).count() == 2
    tasks.rollback_batch(batch.pk)
    assert "Rolled back" in approver.get(detail).content.decode()
    assert not Listing.objects.in_force().filter(credit_list=tax_list).exists()


def test_a_batch_the_task_could_not_publish_shows_why_and_can_be_approved_again(
    uploader, approver, tax_list, monkeypatch, django_capture_on_commit_callbacks
):
    from lists import tasks
    from lists.services.batches import queued

    monkeypatch.setattr(queued, "IN_REQUEST_ROWS", 0)
    batch = uploaded(uploader, tax_list, company_csv(1))
    with django_capture_on_commit_callbacks():
        approver.post(reverse("staff:batch-publish", args=[batch.pk]))
    Membership.objects.filter(user=approver.user).update(role=Membership.Role.UPLOADER)
    tasks.publish_batch(batch.pk)
    Membership.objects.filter(user=approver.user).update(role=Membership.Role.APPROVER)
    page = approver.get(reverse("staff:batch-detail", args=[batch.pk])).content.decode()
    assert "Not published: only an approver" in page and 'id="publish"' in page


def test_operators_see_the_recomputes_still_pending_and_which_are_late(uploader, tax_list):
    from lists.services import measures

    fresh = PendingRecompute.objects.get(pk=measures.defer_recompute(reason="catalogue"))
    late = PendingRecompute.objects.get(pk=measures.defer_recompute(reason="catalogue"))
    PendingRecompute.objects.filter(pk=late.pk).update(created_at=timezone.now() - dt.timedelta(hours=2))
    operator = UserFactory()
    operator.groups.add(Group.objects.get_or_create(name=OPERATORS_GROUP)[0])
    client = Client()
    client.force_login(operator)
    page = client.get(reverse("staff:dashboard")).content.decode()
    assert "Measures being recorded" in page and page.count('class="late"') == 1 and "apply_measures" in page
    assert "Measures being recorded" not in uploader.get(reverse("staff:dashboard")).content.decode()
    measures.finish_recompute(fresh.pk)
    measures.finish_recompute(late.pk)
    assert "Measures being recorded" not in client.get(reverse("staff:dashboard")).content.decode()
