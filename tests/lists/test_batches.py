"""The batch pipeline: receive, validate and diff, publish, reject, roll back."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from agencies.models import AuditEvent
from lists.models import Batch, BatchRow, Change, CreditList, Listing, Restriction, Subject, SubjectName
from lists.services import batches, measures
from lists.services.batches import BatchError, processing
from lists.services.batches.workers import staging_table
from lists.services.feed import listing_snapshot, with_data
from lists.services.periods import default_expiry
from lists.services.raw_files import read_raw_file
from tests.factories import UserFactory, valid_uscc

pytestmark = pytest.mark.django_db
DATA = Path(__file__).resolve().parent.parent / "data" / "importers"
HEADER = "名称,统一社会信用代码,文书号,列入原因,决定日期\n"


def csv_bytes(*rows: str, header: str = HEADER, encoding: str = "utf-8") -> bytes:
    return (header + "".join(r + "\n" for r in rows)).encode(encoding)


def company(
    n: int, reference: str | None = None, reason: str = "虚开增值税专用发票", day: str = "2025-03-01"
) -> str:
    return f"测试{n}贸易有限公司,{valid_uscc(n)},{reference or f'税稽罚〔2025〕{n}号'},{reason},{day}"


def load(credit_list, payload: bytes, *, mode: str = "incremental", user=None, filename="list.csv", **kw):  # type: ignore[no-untyped-def]
    batch = batches.receive_batch(
        credit_list=credit_list,
        payload=payload,
        filename=filename,
        mode=mode,
        origin="upload",
        actor=user,
        **kw,
    )
    return batches.process_batch(batch_id=batch.pk)


def publish(batch, approver):  # type: ignore[no-untyped-def]
    return batches.publish_batch(batch_id=batch.pk, approver=approver)


def test_receiving_a_file_keeps_it_and_enqueues_validation(
    tax_list, uploader, django_capture_on_commit_callbacks
):
    payload = csv_bytes(company(1))
    with django_capture_on_commit_callbacks() as callbacks:
        batch = batches.receive_batch(
            credit_list=tax_list, payload=payload, filename="../../etc/passwd.csv", mode="snapshot",
            origin="upload", actor=uploader, ip_address="10.0.0.7",
        )  # fmt: skip
    assert len(callbacks) == 1
    assert read_raw_file(batch) == payload  # kept, encrypted at rest (tests/lists/test_raw_files.py)
    assert ".." not in batch.raw_file.name and batch.file_size == len(payload) and len(batch.sha256) == 64
    event = AuditEvent.objects.get(action="batch.receive", target_id=str(batch.pk))
    assert event.ip_address == "10.0.0.7" and event.actor == uploader


def test_a_file_over_the_size_limit_is_refused_with_a_clear_message(tax_list, uploader):
    with override_settings(UPLOAD_MAX_BYTES=100), pytest.raises(BatchError, match="at most 0.0 MB"):
        batches.receive_batch(
            credit_list=tax_list, payload=b"x" * 101, filename="a.csv", mode="snapshot", origin="upload"
        )
    assert not Batch.objects.exists()


def test_validation_stages_every_row_with_its_outcome(tax_list, uploader):
    payload = csv_bytes(company(1), company(2), "缺少代码公司,BADCODE,税稽罚1号,x,2025-01-01", company(1))
    batch = load(tax_list, payload, user=uploader)
    assert batch.status == Batch.Status.READY
    assert batch.counts["rows"] == 4 and batch.counts["invalid"] == 2 and batch.counts["add"] == 2
    bad = BatchRow.objects.get(batch=batch, line_no=4)
    assert bad.outcome == "invalid" and any("identifier" in e for e in bad.errors)
    duplicate = BatchRow.objects.get(batch=batch, line_no=5)
    assert "same record as line 2" in duplicate.errors[0]


def test_the_gbk_a_grade_taxpayer_list_loads_into_its_list():
    a_grade = CreditList.objects.get(code="TAX_A_GRADE")
    batch = load(a_grade, (DATA / "jiangxi_A_level_sample_150rows_GBK.csv").read_bytes(), mode="snapshot")
    assert batch.status in (Batch.Status.READY, Batch.Status.NEEDS_MAPPING), batch.error
    assert batch.counts["rows"] == 150
    assert batch.counts["valid"] + batch.counts["warning"] >= 140
    assert batch.encoding.lower().startswith("gb")
    batches.publish_batch(batch_id=batch.pk, waived_by="test") if batch.status == "ready" else None


def test_the_keyvalue_file_fails_with_one_clear_message_and_nothing_staged(tax_list):
    batch = load(tax_list, (DATA / "qinghai_tax_blacklist_sample_public_records_keyvalue.csv").read_bytes())
    assert batch.status == Batch.Status.FAILED
    assert "key/value" in batch.error
    assert not batch.rows.exists()
    assert read_raw_file(batch)  # the file itself is kept


def test_the_keyvalue_file_loads_through_its_declared_format(tax_list):
    payload = (DATA / "qinghai_tax_blacklist_sample_public_records_keyvalue.csv").read_bytes()
    batch = load(tax_list, payload, file_format="keyvalue")
    assert batch.status in (Batch.Status.READY, Batch.Status.NEEDS_MAPPING), batch.error
    assert batch.counts["rows"] == 13


def test_the_szse_xlsx_loads():
    redlist = CreditList.objects.filter(kind="register").first() or CreditList.objects.first()
    payload = (DATA / "szse_A股列表_public_split_rewritten.xlsx").read_bytes()
    batch = load(redlist, payload, filename="szse.xlsx")
    assert batch.status in (Batch.Status.READY, Batch.Status.NEEDS_MAPPING), batch.error
    assert batch.counts["rows"] == 270
    assert batch.file_format == "xlsx"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"PK\x03\x04broken zip", ""),
        ("名称,统一社会信用代码\n".encode() + b"\x80\xff\xfe,1\n", ""),
    ],
    ids=["empty", "broken-xlsx", "undecodable"],
)
def test_bad_files_fail_with_a_message_and_keep_the_file(tax_list, payload, message):
    batch = load(tax_list, payload)
    assert batch.status == Batch.Status.FAILED
    assert message in batch.error and batch.error
    assert batch.file_size == len(payload)


def test_a_zip_that_is_not_a_workbook_fails(tax_list):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    assert load(tax_list, buffer.getvalue()).status == Batch.Status.FAILED


def test_a_huge_cell_makes_its_row_invalid_not_the_file(tax_list):
    batch = load(tax_list, csv_bytes(company(1), company(2, reason="很" * 40_000)))
    assert batch.status == Batch.Status.READY
    row = BatchRow.objects.get(batch=batch, line_no=3)
    assert row.outcome == "invalid" and len(str(row.raw)) < 2_000


def test_formula_cells_are_stored_as_text_and_never_evaluated(tax_list):
    batch = load(tax_list, csv_bytes(company(1, reason='=HYPERLINK("http://x")')))
    row = BatchRow.objects.get(batch=batch, line_no=2)
    assert "HYPERLINK" in str(row.raw)


def test_publishing_needs_a_second_person(tax_list, uploader, approver):
    batch = load(tax_list, csv_bytes(company(1)), user=uploader)
    with pytest.raises(BatchError, match="four-eyes"):
        publish(batch, uploader)
    outsider = UserFactory()
    with pytest.raises(BatchError, match="approver"):
        publish(batch, outsider)
    with pytest.raises(BatchError, match="approver or a recorded waiver"):
        batches.publish_batch(batch_id=batch.pk)
    assert not Listing.objects.filter(credit_list=tax_list).exists()
    assert publish(batch, approver).status == Batch.Status.PUBLISHED


def test_the_database_refuses_an_uploader_approving_their_own_batch(tax_list, uploader):
    batch = load(tax_list, csv_bytes(company(1)), user=uploader)
    batch.approved_by = uploader
    with pytest.raises(IntegrityError), transaction.atomic():
        batch.save(update_fields=["approved_by"])


def test_publishing_creates_subjects_listings_names_feed_and_restrictions(tax_list, uploader, approver):
    batch = load(tax_list, csv_bytes(company(1), company(2)), user=uploader, mode="snapshot")
    batch = publish(batch, approver)
    subject = Subject.objects.get(uscc=valid_uscc(1))
    listing = Listing.objects.get(subject=subject, credit_list=tax_list)
    assert (
        listing.status == "active"
        and listing.first_batch == batch
        and listing.reference == "税稽罚〔2025〕1号"
    )
    assert listing.expires_on == default_expiry(tax_list, dt.date(2025, 3, 1), "")
    assert SubjectName.objects.filter(subject=subject, text="测试1贸易有限公司").exists()
    changes = Change.objects.filter(batch=batch)
    assert changes.count() == 2 and {c.op for c in changes} == {"add"}
    assert (batch.first_seq, batch.last_seq) == (changes.first().seq, changes.last().seq)
    assert Restriction.objects.filter(listing=listing, lifted_at__isnull=True).exists()
    tax_list.refresh_from_db()
    assert tax_list.last_published_at == batch.published_at
    assert AuditEvent.objects.filter(action="batch.publish", target_id=str(batch.pk)).exists()


def test_the_feed_shows_each_added_listing_as_published_for_new_and_known_subjects(
    tax_list, uploader, approver
):
    publish(load(tax_list, csv_bytes(company(1)), user=uploader), approver)
    # The same company again under a new decision and a new name, beside a new company: the
    # known subject's change must carry the name as renamed by this batch.
    renamed = f"测试1贸易集团有限公司,{valid_uscc(1)},税稽罚〔2025〕99号,虚开增值税专用发票,2025-03-01"
    second = publish(load(tax_list, csv_bytes(renamed, company(2)), user=uploader), approver)
    changes = list(with_data(Change.objects.filter(batch=second)).order_by("seq"))
    assert len(changes) == 2 and {c.op for c in changes} == {"add"}
    for change in changes:
        listing = Listing.objects.select_related("subject", "credit_list").get(pk=change.listing_id)
        assert change.published == listing_snapshot(listing)
        assert (change.subject_id, change.credit_list_id) == (listing.subject_id, tax_list.pk)
    known = next(c for c in changes if c.subject_id == Subject.objects.get(uscc=valid_uscc(1)).pk)
    assert known.published["name"] == "测试1贸易集团有限公司"


def test_the_admin_shows_an_added_listings_change_as_the_feed_does(
    tax_list, uploader, approver, admin_client
):
    batch = publish(load(tax_list, csv_bytes(company(1)), user=uploader), approver)
    change = Change.objects.get(batch=batch)
    page = admin_client.get(f"/admin/lists/change/{change.pk}/change/")
    assert page.status_code == 200 and change.data is None
    assert "测试1贸易有限公司" in page.content.decode()


def test_a_change_with_neither_data_nor_a_batch_row_is_refused(tax_list):
    with pytest.raises(IntegrityError, match="change_has_data"), transaction.atomic():
        Change.objects.create(
            op="add", reason="x", subject_id=1, listing_id=1, credit_list=tax_list, data=None
        )


def test_snapshot_removes_missing_records_and_incremental_keeps_them(tax_list, uploader, approver):
    publish(
        load(tax_list, csv_bytes(company(1), company(2), company(3)), user=uploader, mode="snapshot"),
        approver,
    )
    incremental = load(tax_list, csv_bytes(company(1, reason="新事由")), user=uploader, mode="incremental")
    assert (incremental.counts["change"], incremental.counts["remove"]) == (1, 0)
    row = incremental.rows.get(action="change")
    assert row.diff == {"reason": ["虚开增值税专用发票", "新事由"]}
    incremental.status = Batch.Status.REJECTED
    incremental.save()
    snapshot = load(tax_list, csv_bytes(company(1), company(4)), user=uploader, mode="snapshot")
    counts = snapshot.counts
    assert (counts["unchanged"], counts["add"], counts["remove"]) == (1, 1, 2)
    removal = snapshot.rows.filter(action="remove").order_by("line_no").first()
    assert removal.line_no > 3 and removal.data["missing"] is True
    publish(snapshot, approver)
    ended = Listing.objects.get(credit_list=tax_list, subject__uscc=valid_uscc(2))
    assert ended.status == "revoked" and ended.ended_at is not None
    assert not Restriction.objects.in_force().filter(listing=ended).exists()
    assert Change.objects.filter(batch=snapshot, op="remove").count() == 2


def test_incremental_removes_only_through_explicit_rows(tax_list, uploader, approver):
    publish(load(tax_list, csv_bytes(company(1), company(2)), user=uploader), approver)
    header = "名称,统一社会信用代码,文书号,操作\n"
    payload = (header + f"测试1贸易有限公司,{valid_uscc(1)},税稽罚〔2025〕1号,删除\n").encode()
    batch = load(tax_list, payload, user=uploader)
    assert batch.counts["remove"] == 1 and batch.counts["add"] == 0
    publish(batch, approver)
    assert Listing.objects.in_force().filter(credit_list=tax_list).count() == 1


def test_a_second_upload_of_the_same_file_changes_nothing(tax_list, uploader, approver):
    payload = csv_bytes(company(1), company(2))
    publish(load(tax_list, payload, user=uploader, mode="snapshot"), approver)
    again = load(tax_list, payload, user=uploader, mode="snapshot")
    assert again.counts["unchanged"] == 2
    assert again.counts["add"] == again.counts["change"] == again.counts["remove"] == 0


def test_a_snapshot_confirms_the_listings_it_keeps_without_rewriting_them(
    tax_list, uploader, approver, client
):
    def seen() -> dict[str, tuple[str, dt.datetime]]:
        body = client.get("/api/v1/listings", {"list": tax_list.code}).json()
        return {
            i["reference"]: (i["status"], dt.datetime.fromisoformat(i["last_seen_at"]))
            for i in body["results"]
        }

    def snapshot(*rows: str, name: str) -> Batch:
        return publish(
            load(tax_list, csv_bytes(*rows), user=uploader, mode="snapshot", filename=name), approver
        )

    one, two = "税稽罚〔2025〕1号", "税稽罚〔2025〕2号"
    snapshot(company(1), company(2), name="first.csv")
    stored = list(Listing.objects.order_by("pk").values_list("last_seen_at", "last_changed_at"))
    second = snapshot(company(1), company(2), name="second.csv")
    assert list(Listing.objects.order_by("pk").values_list("last_seen_at", "last_changed_at")) == stored
    assert seen() == {one: ("active", second.published_at), two: ("active", second.published_at)}

    third = snapshot(company(1), name="third.csv")  # the second record is gone: removed
    assert seen() == {one: ("active", third.published_at), two: ("revoked", second.published_at)}
    batches.rollback_batch(batch_id=third.pk, actor=approver)
    assert seen() == {one: ("active", second.published_at), two: ("active", second.published_at)}


def test_a_digest_made_another_way_still_finds_no_change_and_is_refreshed(tax_list, uploader, approver):
    payload = csv_bytes(company(1), company(2))
    first = publish(load(tax_list, payload, user=uploader, mode="snapshot"), approver)
    row_digests = set(first.rows.values_list("content_hash", flat=True))
    Listing.objects.filter(credit_list=tax_list).update(content_hash="digest-of-an-earlier-version")
    again = load(tax_list, payload, user=uploader, mode="snapshot", filename="again.csv")
    assert (again.counts["unchanged"], again.counts["change"]) == (2, 0)
    publish(again, approver)
    assert (
        set(Listing.objects.filter(credit_list=tax_list).values_list("content_hash", flat=True))
        == row_digests
    )


def test_a_publication_while_a_file_is_checked_is_in_its_preview(tax_list, uploader, approver, monkeypatch):
    """Another approver publishes the same record after this file's rows were matched."""
    other = load(tax_list, csv_bytes(company(1)), user=uploader, filename="other.csv")
    analyze = processing.analyze  # of lists_batchrow: between the match and the diff

    def publish_other_meanwhile(*tables, rows):  # type: ignore[no-untyped-def]
        if tables == ("lists_batchrow",):
            other.status = publish(other, approver).status
        analyze(*tables, rows=rows)

    monkeypatch.setattr(processing, "analyze", publish_other_meanwhile)
    batch = load(tax_list, csv_bytes(company(1), company(2)), user=uploader)
    assert other.status == Batch.Status.PUBLISHED
    assert (batch.counts["add"], batch.counts["unchanged"]) == (1, 1)
    assert batch.rows.get(line_no=2).action == "unchanged"
    publish(batch, approver)
    assert Listing.objects.filter(credit_list=tax_list).count() == 2


def test_invalid_rows_block_publishing_unless_skipped(tax_list, uploader, approver):
    batch = load(tax_list, csv_bytes(company(1), "坏公司,BAD,1,x,2025-01-01"), user=uploader)
    with pytest.raises(BatchError, match="invalid"):
        publish(batch, approver)
    batches.publish_batch(batch_id=batch.pk, approver=approver, skip_invalid=True)
    assert Listing.objects.filter(credit_list=tax_list).count() == 1


def test_a_failure_while_publishing_leaves_everything_as_it_was(tax_list, uploader, approver, monkeypatch):
    batch = load(tax_list, csv_bytes(company(1), company(2)), user=uploader)

    def explode(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("restriction job crashed")

    monkeypatch.setattr(measures, "apply_measures", explode)
    subjects_before = Subject.objects.count()
    with pytest.raises(RuntimeError):
        publish(batch, approver)
    assert Subject.objects.count() == subjects_before
    assert not Listing.objects.filter(credit_list=tax_list).exists()
    assert not Change.objects.filter(batch=batch).exists()
    batch.refresh_from_db()
    assert batch.status == Batch.Status.READY


def test_rollback_restores_exactly_the_previous_state(tax_list, uploader, approver):
    publish(load(tax_list, csv_bytes(company(1), company(2)), user=uploader, mode="snapshot"), approver)
    fields = [
        "id",
        "status",
        "reason",
        "reference",
        "expires_on",
        "content_hash",
        "ended_at",
        "last_batch_id",
    ]
    before = list(Listing.objects.filter(credit_list=tax_list).order_by("id").values(*fields))
    live_before = set(Restriction.objects.in_force().values_list("listing_id", "measure_id"))
    second = load(
        tax_list, csv_bytes(company(1, reason="新事由"), company(3)), user=uploader, mode="snapshot"
    )
    publish(second, approver)
    batches.rollback_batch(batch_id=second.pk, actor=approver)
    after = list(
        Listing.objects.filter(credit_list=tax_list, id__in=[b["id"] for b in before])
        .order_by("id")
        .values(*fields)
    )
    assert after == before
    added = Listing.objects.get(credit_list=tax_list, subject__uscc=valid_uscc(3))
    assert added.status == "revoked"
    assert set(Restriction.objects.in_force().values_list("listing_id", "measure_id")) == live_before
    assert {c.op for c in Change.objects.filter(batch=second, reason="rollback")} == {
        "add",
        "modify",
        "remove",
    }
    with pytest.raises(BatchError, match="already"):
        batches.rollback_batch(batch_id=second.pk, actor=approver)


def test_only_the_latest_published_batch_can_be_rolled_back(tax_list, uploader, approver):
    first = publish(load(tax_list, csv_bytes(company(1)), user=uploader), approver)
    publish(load(tax_list, csv_bytes(company(2)), user=uploader), approver)
    with pytest.raises(BatchError, match="later batch"):
        batches.rollback_batch(batch_id=first.pk, actor=approver)


def test_personal_id_numbers_are_never_stored(uploader, approver):
    person_list = CreditList.objects.filter(subject_types__contains=["natural_person"]).first()
    full = "11010519491231002X"
    header = "姓名,证件号码,主体类型,文书号,决定日期\n"
    payload = (header + f"张三,{full},自然人,（2025）京01执1号,2025-01-02\n").encode()
    batch = load(person_list, payload, user=uploader)
    row = batch.rows.get(line_no=2)
    assert full not in str(row.raw) + str(row.data) + row.source_key
    batches.publish_batch(batch_id=batch.pk, waived_by="test")
    subject = Subject.objects.get(name="张三")
    assert subject.person_id_masked == "1101**********002X" and subject.person_id_hash
    assert full not in str(Change.objects.filter(batch=batch).values_list("data", flat=True))


def test_reject_keeps_the_rows_and_refuses_publishing(tax_list, uploader, approver):
    batch = load(tax_list, csv_bytes(company(1)), user=uploader)
    batches.reject_batch(batch_id=batch.pk, actor=approver, reason="wrong month")
    with pytest.raises(BatchError):
        publish(batch, approver)
    assert batch.rows.count() == 1


def test_default_expiry_follows_the_list_period_rule(tax_list):
    decided = dt.date(2024, 1, 31)
    tax_list.period_rule = {"kind": "tiered", "tiers": {"minor": 3, "serious": 36}}
    assert default_expiry(tax_list, decided, "minor") == dt.date(2024, 4, 30)
    assert default_expiry(tax_list, decided, "") == dt.date(2027, 1, 31)
    tax_list.period_rule = {"kind": "until_removed"}
    assert default_expiry(tax_list, decided, "") is None


def test_the_process_task_calls_the_service(tax_list):
    from lists import tasks

    batch = batches.receive_batch(
        credit_list=tax_list, payload=csv_bytes(company(1)), filename="a.csv", mode="snapshot", origin="api"
    )
    assert tasks.process_batch(batch.pk) == "ready"
    assert timezone.now() >= batch.created_at


def test_the_import_command_uses_the_same_pipeline_and_records_the_operator(tax_list, tmp_path):
    from django.core.management import call_command

    path = tmp_path / "list.csv"
    path.write_bytes(csv_bytes(company(1), company(2)))
    out = io.StringIO()
    call_command("import_list", tax_list.code, str(path), "--mode", "snapshot", "--publish", stdout=out)
    batch = Batch.objects.get()
    assert batch.status == "published" and batch.origin == "command"
    assert batch.approval_waived_by.startswith("operator command (")
    assert "published batch" in out.getvalue()
    assert Listing.objects.in_force().filter(credit_list=tax_list).count() == 2


def test_the_import_command_fails_clearly_on_a_bad_file(tax_list, tmp_path):
    from django.core.management import CommandError, call_command

    path = tmp_path / "qinghai.csv"
    path.write_bytes((DATA / "qinghai_tax_blacklist_sample_public_records_keyvalue.csv").read_bytes())
    with pytest.raises(CommandError, match="key/value"):
        call_command("import_list", tax_list.code, str(path), "--mode", "incremental", stdout=io.StringIO())


def test_a_second_upload_of_the_same_file_reuses_the_validation(tax_list, uploader, approver, monkeypatch):
    payload = csv_bytes(company(1), company(2), "坏公司,BAD,1,x,2025-01-01")
    first = load(tax_list, payload, user=uploader, mode="snapshot")
    batches.publish_batch(batch_id=first.pk, approver=approver, skip_invalid=True)
    from lists.services.batches import processing

    monkeypatch.setattr(processing, "parse", lambda *a, **k: pytest.fail("the file was parsed again"))
    again = load(tax_list, payload, user=uploader, mode="snapshot")
    assert again.status == "ready" and again.file_format == "csv"
    assert (again.counts["unchanged"], again.counts["invalid"], again.counts["remove"]) == (2, 1, 0)


def test_a_big_batch_derives_restrictions_in_a_task_after_commit(
    tax_list, uploader, approver, monkeypatch, django_capture_on_commit_callbacks
):
    from lists import tasks
    from lists.services.batches import publishing

    monkeypatch.setattr(publishing, "INLINE_MEASURES_MAX", 1)
    monkeypatch.setattr(publishing, "NAME_CHUNK", 1)  # the names are written slice by slice
    batch = load(tax_list, csv_bytes(company(1), company(2)), user=uploader)
    with django_capture_on_commit_callbacks() as callbacks:
        publish(batch, approver)
    assert len(callbacks) == 1
    assert not Restriction.objects.filter(listing__credit_list=tax_list).exists()
    assert not SubjectName.objects.filter(subject__uscc=valid_uscc(2)).exists()
    result = tasks.apply_batch_measures(batch.pk)
    assert result["derived"] > 0 and result["names"] == 2
    assert SubjectName.objects.filter(subject__uscc=valid_uscc(2), text="测试2贸易有限公司").exists()
    assert Restriction.objects.in_force().filter(listing__credit_list=tax_list).count() > 0


def answers(uscc: str) -> dict[str, set[tuple[str, int]]]:
    """Return what a counter check, a screening and the subject page say is in force, as (measure, listing)."""
    from lists.services.checks import check_restriction, find_subject
    from lists.services.profiles import subject_profile
    from lists.services.screening import ScreenQuery, screen

    subject = find_subject(uscc)
    check = check_restriction(subject=subject, measure=None)
    screened = screen([ScreenQuery(identifier=uscc)]).results[0]
    profile = subject_profile(subject)
    return {
        "check": {(r["measure"], r["listing_id"]) for r in check.restrictions},
        "screening": {
            (r["measure"], r["listing_id"]) for r in screened[0].restrictions if r["kind"] == "punishment"
        },
        "page": {(r.measure.code, r.listing_id) for r in profile.punishments},
    }


def test_until_a_big_batch_s_restrictions_are_written_checks_derive_them(
    tax_list, uploader, approver, monkeypatch, django_capture_on_commit_callbacks
):
    from lists import tasks
    from lists.models import PendingRecompute
    from lists.services.batches import publishing

    first = load(tax_list, csv_bytes(company(1), company(2)), user=uploader, mode="snapshot")
    publish(first, approver)  # small: restrictions written at once
    restricted = answers(valid_uscc(1))
    assert restricted["check"] and restricted["check"] == restricted["screening"] == restricted["page"]
    monkeypatch.setattr(publishing, "INLINE_MEASURES_MAX", 1)
    # A snapshot that drops company 1 and adds company 3, published with its restrictions deferred.
    batch = load(tax_list, csv_bytes(company(2), company(3)), user=uploader, mode="snapshot")
    with django_capture_on_commit_callbacks():
        publish(batch, approver)
    pending = PendingRecompute.objects.get(batch=batch)
    assert Restriction.objects.in_force().filter(listing__subject__uscc=valid_uscc(1)).exists()
    assert not Restriction.objects.filter(listing__subject__uscc=valid_uscc(3)).exists()

    during = {uscc: answers(uscc) for uscc in (valid_uscc(1), valid_uscc(3))}
    assert during[valid_uscc(1)] == {"check": set(), "screening": set(), "page": set()}, (
        "removed: allowed at once"
    )
    added = during[valid_uscc(3)]
    assert added["check"] and added["check"] == added["screening"] == added["page"], (
        "added: restricted at once"
    )

    tasks.apply_batch_measures(batch.pk, "batch_removed", pending.pk)
    assert not PendingRecompute.objects.exists()
    assert {uscc: answers(uscc) for uscc in during} == during, "the recorded restrictions say the same"

    with django_capture_on_commit_callbacks():
        batches.rollback_batch(batch_id=batch.pk, actor=approver)
    assert PendingRecompute.objects.get(batch=batch).reason == "rollback"
    assert answers(valid_uscc(1)) == restricted, "the rollback restores company 1's measures at once"
    assert answers(valid_uscc(3))["check"] == set()


def test_a_legacy_xls_workbook_loads(tax_list):
    batch = load(tax_list, (DATA / "small_list.xls").read_bytes(), filename="small_list.xls")
    assert batch.file_format == "xls" and batch.status in ("ready", "needs_mapping"), batch.error
    assert batch.counts["rows"] == 3


def test_removing_a_record_that_is_not_published_is_a_warning(tax_list, uploader):
    header = "名称,统一社会信用代码,文书号,操作\n"
    payload = (header + f"测试9贸易有限公司,{valid_uscc(9)},税稽罚〔2025〕9号,删除\n").encode()
    batch = load(tax_list, payload, user=uploader)
    row = batch.rows.get()
    assert row.action == "" and row.warnings == ["action: no published record to remove"]
    assert batch.counts["remove"] == 0 and batch.counts["warning"] == 1


@pytest.mark.django_db(transaction=True)
def test_two_runs_of_one_batch_at_once_stage_its_rows_once(tax_list):
    """The queued task and `import_list` may process the same batch at the same moment."""
    import threading

    payload = csv_bytes(*(company(n) for n in range(1, 3001)))
    batch = batches.receive_batch(
        credit_list=tax_list, payload=payload, filename="list.csv", mode="incremental", origin="command"
    )
    failures: list[BaseException] = []

    def run() -> None:
        try:
            batches.process_batch(batch_id=batch.pk)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)
        finally:
            connection.close()

    runners = [threading.Thread(target=run) for _ in range(2)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(timeout=120)
    assert failures == []
    batch.refresh_from_db()
    assert batch.status == Batch.Status.READY
    assert BatchRow.objects.filter(batch=batch).count() == 3000


def _staged_rows(batch: Batch) -> list[tuple]:
    return list(
        batch.rows.order_by("line_no").values_list(
            "line_no", "outcome", "action", "errors", "warnings", "data"
        )
    )


def test_a_big_file_validated_by_worker_processes_gives_the_same_rows(tax_list, uploader):
    """Forked workers build the rows in chunks; duplicates across chunks are still found."""
    rows = [company(n) for n in range(1, 5001)]
    rows[4200] = company(7)  # the same record as line 8, two chunks later
    rows[3000] = "坏公司,BADCODE,税稽罚1号,x,2025-01-01"
    rows.insert(100, "")  # a blank line is skipped, not counted
    payload = csv_bytes(*rows)
    serial = load(tax_list, payload, user=uploader, mode="snapshot")
    with override_settings(BATCH_PARALLEL_MIN_BYTES=0, BATCH_WORKERS=2):
        parallel = load(tax_list, payload + b"\n", user=uploader, mode="snapshot")
    assert parallel.status == serial.status == Batch.Status.READY
    assert {k: v for k, v in parallel.counts.items() if k != "base_seq"} == {
        k: v for k, v in serial.counts.items() if k != "base_seq"
    }
    assert parallel.counts["invalid"] == 2 and parallel.counts["rows"] == 5000
    assert _staged_rows(parallel) == _staged_rows(serial)
    duplicate = parallel.rows.get(line_no=4203)
    assert duplicate.errors == ["same record as line 8 (duplicate in this file)"]
    assert staging_table(parallel) not in _staging_tables()


def test_the_row_limit_holds_when_workers_validate(tax_list, uploader):
    payload = csv_bytes(*(company(n) for n in range(1, 4001)))
    with override_settings(BATCH_PARALLEL_MIN_BYTES=0, BATCH_WORKERS=2, UPLOAD_MAX_ROWS=2500):
        batch = load(tax_list, payload, user=uploader)
    assert batch.status == Batch.Status.FAILED
    assert "more than 2,500 rows" in batch.error
    assert not batch.rows.exists() and staging_table(batch) not in _staging_tables()


def _staging_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'batch_staging_%%'")
        return [r[0] for r in cursor.fetchall()]


def test_a_failing_worker_fails_the_batch_clearly_and_keeps_the_file(tax_list, uploader, monkeypatch):
    from lists.services.batches.staging import RowStager

    def broken(self, row):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug met while staging 11010519491231002X")

    monkeypatch.setattr(RowStager, "stage", broken)
    payload = csv_bytes(*(company(n) for n in range(1, 50)))
    with override_settings(BATCH_PARALLEL_MIN_BYTES=0, BATCH_WORKERS=2):
        batch = load(tax_list, payload, user=uploader)
    assert batch.status == Batch.Status.FAILED and "internal error" in batch.error
    assert not batch.rows.exists() and read_raw_file(batch) == payload
