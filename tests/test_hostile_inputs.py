"""A hostile-input corpus through the upload pipeline, the API and the public forms (issue 8).

Each item must end in a clear error (or a clean, bounded import) — never a server error — within
a time and memory bound. Memory is the peak of what Python allocates while the item runs (tracemalloc). The corpus and the
outcomes are recorded in docs/security.md.

Uploads go through both doors: the staff upload page and the agency push API, then through
`process_batch`, which is what the Celery worker runs.
"""

from __future__ import annotations

import csv
import io
import json
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from openpyxl import Workbook

from agencies.models import Membership
from lists.models import Batch, BatchRow, CreditList, Evidence
from lists.services import batches
from tests.factories import ListingFactory, MembershipFactory, valid_uscc
from tests.portal.api_helpers import auth, make_key

pytestmark = pytest.mark.django_db
HEADER = "名称,统一社会信用代码,文书号,列入原因,决定日期\n"
MIB = 1024 * 1024
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@contextmanager
def bounded(seconds: float, mib: float) -> Iterator[None]:
    """Fail if the block takes longer, or allocates more memory at its peak, than allowed.

    tracemalloc counts what Python allocates from the start of the block (C libraries that
    allocate outside Python's allocator, e.g. zlib's buffers, are not counted).
    """
    tracemalloc.start()
    start = time.monotonic()
    try:
        yield
    finally:
        elapsed, peak = time.monotonic() - start, tracemalloc.get_traced_memory()[1] / MIB
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.1f} s (bound {seconds} s)"
    assert peak < mib, f"allocated {peak:.0f} MiB at its peak (bound {mib} MiB)"


def company_csv(*rows: tuple[str, str], reason: str = "虚开增值税专用发票") -> bytes:
    lines = "".join(
        f"{name},{uscc},税稽罚〔2025〕{i}号,{reason},2025-03-01\n" for i, (name, uscc) in enumerate(rows)
    )
    return (HEADER + lines).encode()


def xlsx(rows: list[list[str]]) -> bytes:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def rezip(payload: bytes, replace: dict[str, bytes]) -> bytes:
    """Return the XLSX with some parts replaced (or added)."""
    source, out = zipfile.ZipFile(io.BytesIO(payload)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if item.filename not in replace:
                target.writestr(item, source.read(item.filename))
        for name, data in replace.items():
            target.writestr(name, data)
    return out.getvalue()


def zip_bomb_xlsx() -> bytes:
    """A workbook whose sheet part unpacks 64 MiB of nothing from about 64 KiB."""
    good = xlsx([["名称", "统一社会信用代码"], ["测试公司", valid_uscc(1)]])
    sheet = zipfile.ZipFile(io.BytesIO(good)).read("xl/worksheets/sheet1.xml")
    padding = b"<!--" + b" " * (64 * MIB) + b"-->"
    return rezip(
        good, {"xl/worksheets/sheet1.xml": sheet.replace(b"<sheetData>", padding + b"<sheetData>", 1)}
    )


def entities_xlsx() -> bytes:
    """A workbook whose shared strings declare entities (billion laughs, external file)."""
    good = xlsx([["名称", "统一社会信用代码"], ["测试公司", valid_uscc(1)]])
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">'
        b'<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
        b"<si><t>&lol2;&xxe;</t></si></sst>"
    )
    return rezip(good, {"xl/sharedStrings.xml": laughs})


# --- the two doors for files -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def tax_list() -> CreditList:
    return CreditList.objects.get(code="TAX_MAJOR_VIOLATION")


def through_page(credit_list: CreditList, name: str, payload: bytes) -> tuple[int, Batch | None, str]:
    """Upload on the staff page; return the status, the batch (processed) and the page text."""
    user = MembershipFactory(agency=credit_list.agency, role=Membership.Role.UPLOADER).user
    client = Client()
    client.force_login(user)
    data = {"credit_list": credit_list.code, "mode": "snapshot", "file": SimpleUploadedFile(name, payload)}
    response = client.post(reverse("staff:batch-upload"), data)
    return _processed(response, response.content.decode(errors="replace"))


def through_api(credit_list: CreditList, name: str, payload: bytes) -> tuple[int, Batch | None, str]:
    """Push through the API with the agency's key; return the status, the batch (processed), the body."""
    _, secret = make_key(["push"], agency=credit_list.agency)
    data = {"mode": "snapshot", "file": SimpleUploadedFile(name, payload)}
    response = Client().post(reverse("api:batch-push", args=[credit_list.code]), data, **auth(secret))
    return _processed(response, response.content.decode(errors="replace"))


def _processed(response, text: str) -> tuple[int, Batch | None, str]:  # type: ignore[no-untyped-def]
    assert response.status_code < 500, text[:2000]
    batch = Batch.objects.order_by("-pk").first() if response.status_code in (202, 302) else None
    if batch is not None:
        batch = batches.process_batch(batch_id=batch.pk)  # what the Celery worker does
    return response.status_code, batch, text


DOORS = {"page": through_page, "api": through_api}


def assert_refused(batch: Batch | None, *words: str) -> None:
    """Assert the batch failed with an error that names the problem."""
    assert batch is not None and batch.status == Batch.Status.FAILED, batch and (batch.status, batch.error)
    assert any(word.lower() in batch.error.lower() for word in words), batch.error


# --- the corpus ------------------------------------------------------------------------------------


@pytest.mark.parametrize("door", DOORS)
def test_a_decompression_bomb_xlsx_is_refused_without_unpacking_it(tax_list, door):
    payload = zip_bomb_xlsx()
    assert len(payload) < 1 * MIB
    with bounded(seconds=20, mib=80):
        _, batch, _ = DOORS[door](tax_list, "bomb.xlsx", payload)
    assert_refused(batch, "zip bomb", "unpacks")


@pytest.mark.parametrize("door", DOORS)
def test_an_xlsx_declaring_xml_entities_is_refused(tax_list, door):
    with bounded(seconds=20, mib=50):
        _, batch, _ = DOORS[door](tax_list, "entities.xlsx", entities_xlsx())
    assert_refused(batch, "DOCTYPE", "entities")


def test_a_100_mb_single_cell_is_refused_as_an_overlong_line(tax_list, tmp_path):
    # Built in a temporary file, as an agency's would be, then uploaded through the page.
    big = tmp_path / "big.csv"
    with big.open("wb") as out:
        out.write(HEADER.encode() + "测试公司,".encode())
        for _ in range(100):
            out.write(b"A" * MIB)
        out.write(
            f",税稽罚〔2025〕1号,原因,2025-03-01\n测试二公司,{valid_uscc(2)},税稽罚〔2025〕2号,原因,2025-03-01\n".encode()
        )
    payload = big.read_bytes()
    with bounded(seconds=120, mib=400):
        status, batch, _ = through_page(tax_list, "big.csv", payload)
    del payload
    assert status == 302 and batch is not None
    rows = BatchRow.objects.filter(batch=batch)
    if batch.status == Batch.Status.FAILED:
        assert batch.error
    else:
        problem = rows.exclude(outcome=BatchRow.Outcome.VALID).first()
        assert problem is not None and "longer than" in " ".join(problem.errors)
        assert max(len(json.dumps(r.raw)) for r in rows) < 64 * 1024  # the big cell was not stored


def test_a_file_over_the_upload_limit_gets_a_clear_size_error(tax_list, settings):
    settings.UPLOAD_MAX_BYTES = 1 * MIB
    payload = company_csv(("测试公司", valid_uscc(1))) + b"#" * (2 * MIB)
    status, batch, text = through_page(tax_list, "big.csv", payload)
    assert status == 200 and batch is None and "files of at most 1.0 MB are accepted" in text
    status, batch, text = through_api(tax_list, "big.csv", payload)
    assert status == 400 and batch is None and "at most 1.0 MB" in text


def empty_rows_csv(count: int) -> bytes:
    first, second = company_csv(("测试公司", valid_uscc(1))), company_csv(("测试二公司", valid_uscc(2)))
    return first + b"\n" * count + second[len(HEADER.encode()) :]


@pytest.mark.parametrize("door", DOORS)
def test_two_million_empty_rows_are_skipped_quickly(tax_list, door):
    # Timed only: tracing two million loop turns would take ten times longer than the work.
    start = time.monotonic()
    _, batch, _ = DOORS[door](tax_list, "empty-rows.csv", empty_rows_csv(2_000_000))
    assert time.monotonic() - start < 60
    assert batch is not None and batch.status in (Batch.Status.READY, Batch.Status.NEEDS_MAPPING), (
        batch.status,
        batch.error,
    )
    assert BatchRow.objects.filter(batch=batch).count() == 2


def test_empty_rows_cost_no_memory(tax_list):
    with bounded(seconds=60, mib=40):
        _, batch, _ = through_page(tax_list, "empty-rows.csv", empty_rows_csv(200_000))
    assert batch is not None and BatchRow.objects.filter(batch=batch).count() == 2


def test_a_file_of_only_empty_lines_is_refused_clearly(tax_list):
    _, batch, _ = through_page(tax_list, "empty.csv", b"\n" * 2_000_000)
    assert_refused(batch, "empty", "no header", "header", "no rows")


@pytest.mark.parametrize("door", DOORS)
def test_nul_bytes_in_cells_do_not_break_the_import(tax_list, door):
    payload = company_csv(("测试\x00公司", valid_uscc(1)), ("正常公司", valid_uscc(2)), reason="原因\x00\x00")
    with bounded(seconds=20, mib=50):
        _, batch, _ = DOORS[door](tax_list, "nul.csv", payload)
    assert batch is not None
    if batch.status == Batch.Status.FAILED:
        assert batch.error
    else:
        stored = json.dumps(list(BatchRow.objects.filter(batch=batch).values_list("raw", "data")))
        assert "\\u0000" not in stored


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        (
            "invalid-utf8",
            company_csv(("测试公司", valid_uscc(1))) + b"\xc3\x28\xa0\xa1,\xe2\x82,x,y,2025-03-01\n",
        ),
        ("invalid-gbk", "名称,代码\n".encode("gbk") + b"\x81\x20\xfe\x7f\xff,abc\n"),
        ("binary", bytes(range(256)) * 64),
    ],
    ids=["invalid-utf8", "invalid-gbk", "binary"],
)
def test_undecodable_text_is_refused_with_the_offset(tax_list, name, payload):
    with bounded(seconds=20, mib=50):
        _, batch, _ = through_page(tax_list, f"{name}.csv", payload)
    assert_refused(batch, "decode", "encoding", "byte", "not a", "unsupported")


def test_formula_cells_are_defused_in_the_problems_download(tax_list):
    formulas = [
        '=HYPERLINK("http://evil.example","x")',
        "+cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+1)*cmd",
    ]
    payload = (
        HEADER + "".join(f"{f},not-a-code,文书{i},原因,2025-03-01\n" for i, f in enumerate(formulas))
    ).encode()
    _, batch, _ = through_page(tax_list, "formulas.csv", payload)
    assert batch is not None and batch.status != Batch.Status.FAILED, batch.error
    user = MembershipFactory(agency=tax_list.agency, role=Membership.Role.UPLOADER).user
    client = Client()
    client.force_login(user)
    response = client.get(reverse("staff:batch-problems", args=[batch.pk]))
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert any("HYPERLINK" in cell for cell in cells)
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")], cells


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    "name", ["../../etc/passwd.csv", "..\\..\\windows\\system.ini.csv", "/etc/cron.d/x.csv"]
)
def test_path_traversal_file_names_are_stored_under_a_sanitised_name(tax_list, settings, door, name):
    _, batch, _ = DOORS[door](tax_list, name, company_csv(("测试公司", valid_uscc(1))))
    assert batch is not None
    stored = Path(batch.raw_file.path).resolve()
    assert stored.is_relative_to(Path(settings.MEDIA_ROOT).resolve() / "batches")
    assert ".." not in batch.raw_file.name and "\\" not in batch.raw_file.name


def test_evidence_with_a_path_traversal_name_is_stored_safely(settings):
    listing = ListingFactory()
    data = {
        "applicant_name": "李四",
        "applicant_email": "li@example.com",
        "field": "reason",
        "grounds": "x",
        "evidence": [SimpleUploadedFile("../../../etc/passwd.pdf", PDF, content_type="application/pdf")],
    }
    response = Client().post(reverse("cases:objection-new", args=[listing.pk]), data)
    assert response.status_code == 302, response.content.decode()[:1000]
    evidence = Evidence.objects.get()
    assert ".." not in evidence.file.name and "/etc/" not in evidence.file.name
    assert Path(evidence.file.path).resolve().is_relative_to(Path(settings.MEDIA_ROOT).resolve())


# --- JSON to the API and text to the forms ---------------------------------------------------------


@pytest.fixture
def screen_key() -> str:
    return make_key(["screen", "read"])[1]


def test_an_oversized_json_body_is_refused_before_it_is_read(screen_key, settings):
    body = json.dumps({"queries": [{"name": "x" * 1000}] * 12_000})
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    with bounded(seconds=10, mib=120):
        response = Client().post(
            reverse("api:screen"), body, content_type="application/json", **auth(screen_key)
        )
    assert response.status_code in (400, 413)


def test_ten_thousand_levels_of_json_nesting_get_a_400(screen_key):
    for deep in ("[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000):
        with bounded(seconds=5, mib=50):
            response = Client().post(
                reverse("api:screen"), deep, content_type="application/json", **auth(screen_key)
            )
        assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


def test_too_many_screening_queries_get_a_400(screen_key):
    body = {"queries": [{"name": "张三"}] * 1001}
    response = Client().post(reverse("api:screen"), body, content_type="application/json", **auth(screen_key))
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("public:search", {"q": "测试\x00公司"}),
        ("public:search", {"q": "\x00" * 1000}),
        ("public:search", {"q": "A" * 100_000}),
        ("api:subject-list", {"q": "\x00"}),
        ("api:listing-list", {"subject": "1\x00"}),
        ("api:change-list", {"after": "99999999999999999999999"}),
    ],
)
def test_hostile_query_strings_get_a_clear_answer(url, params):
    response = Client().get(reverse(url), params)
    assert response.status_code in (200, 400), response.content[:500]


def test_nul_bytes_and_huge_fields_in_public_forms_get_form_errors():
    listing = ListingFactory()
    client = Client()
    for data in (
        {
            "applicant_name": "李\x00四",
            "applicant_email": "li@example.com",
            "field": "reason",
            "grounds": "x\x00",
        },
        {
            "applicant_name": "李四" * 5000,
            "applicant_email": "li@example.com",
            "field": "reason",
            "grounds": "x" * 200_000,
        },
    ):
        response = client.post(reverse("cases:objection-new", args=[listing.pk]), data)
        assert response.status_code == 200  # the form again, with its errors
    response = client.post(reverse("cases:track"), {"number": "YY\x00", "access_code": "\x00"})
    assert response.status_code in (200, 403)


def test_an_oversized_form_body_is_refused(settings):
    body = "number=" + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = Client().post(reverse("cases:track"), body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400


def test_nul_bytes_in_the_header_do_not_break_the_import(tax_list):
    payload = (
        "名\x00称,统一社会信用代码\x00,文书号,列入原因,决定日期\n测试公司,"
        + valid_uscc(1)
        + ",文书1,原因,2025-03-01\n"
    ).encode()
    _, batch, _ = through_page(tax_list, "nul-header.csv", payload)
    assert batch is not None and (batch.status != Batch.Status.FAILED or batch.error)


def test_nul_in_json_lines_keys_and_values_does_not_break_the_import(tax_list):
    line = {
        "名称": "测试\u0000公司",
        "统一社会信用代码": valid_uscc(1),
        "文书号\u0000": "文书1",
        "列入原因": "原因",
        "决定日期": "2025-03-01",
    }
    payload = (json.dumps(line, ensure_ascii=False) + "\n").encode()
    user = MembershipFactory(agency=tax_list.agency, role=Membership.Role.UPLOADER).user
    client = Client()
    client.force_login(user)
    data = {
        "credit_list": tax_list.code,
        "mode": "snapshot",
        "file_format": "jsonl",
        "file": SimpleUploadedFile("n.jsonl", payload),
    }
    status, batch, _ = _processed(client.post(reverse("staff:batch-upload"), data), "")
    assert batch is not None and (batch.status != Batch.Status.FAILED or batch.error)
