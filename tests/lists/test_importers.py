"""File parsers: real agency samples, and hostile or broken files (no database needed)."""

from __future__ import annotations

import io
import itertools
import json
import re
import time
import zipfile
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import openpyxl
import openpyxl.xml
import pytest

from lists.importers import (
    FieldSpec,
    ImportRejected,
    Limits,
    ListSchema,
    RowResult,
    detect_format,
    map_file_headers,
    map_headers,
    parse,
)
from lists.importers.decoding import detect_encoding, sniff_delimiter
from lists.importers.rows import sheet_rows

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "importers"
JIANGXI = SAMPLES / "jiangxi_A_level_sample_150rows_GBK.csv"
QINGHAI = SAMPLES / "qinghai_tax_blacklist_sample_public_records_keyvalue.csv"
SZSE = SAMPLES / "szse_A股列表_public_split_rewritten.xlsx"
SMALL_XLS = SAMPLES / "small_list.xls"
TODAY = date(2024, 6, 1)
KEYVALUE_MESSAGE = "this file looks like a key/value layout (one field per line); choose the key/value format"
A_GRADE_TAXPAYERS = ListSchema(
    extra_fields=[FieldSpec("evaluation_year", "评价年度", "year"), FieldSpec("tax_authority", "税务机关")],
    subject_types=["legal_person", "individual_business", "farmer_cooperative", "unincorporated_org"],
    required=["name", "identifier"],
)
TAX_BLACKLIST = ListSchema(
    subject_types=["legal_person", "unincorporated_org"], required=["name", "identifier"]
)


def rows_of(payload: bytes, schema: ListSchema | None = None, **kwargs: object) -> list[RowResult]:
    return list(parse(payload, schema or ListSchema(), today=TODAY, **kwargs))  # type: ignore[arg-type]


def only_row(payload: bytes, schema: ListSchema | None = None, **kwargs: object) -> RowResult:
    (row,) = rows_of(payload, schema, **kwargs)
    return row


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    workbook = openpyxl.Workbook()
    for values in rows:
        workbook.active.append(values)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def with_member(payload: bytes, name: str, change: Callable[[bytes], bytes]) -> bytes:
    """Return the zip with one member rewritten."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info.filename, change(data) if info.filename == name else data)
    return out.getvalue()


# Real samples


def test_the_jiangxi_gbk_list_loads_all_150_rows() -> None:
    payload = JIANGXI.read_bytes()
    rows = rows_of(payload, A_GRADE_TAXPAYERS)
    assert detect_encoding(payload) == "gb18030"
    assert len(rows) == 150
    assert [r.line_no for r in rows] == list(range(2, 152))
    assert [r for r in rows if r.errors or r.warnings] == []
    assert rows[0].data["name"] == "九江修水万景电力开发有限公司"
    assert rows[0].data["evaluation_year"] == 2018


def test_the_jiangxi_list_mixes_credit_codes_and_legacy_tax_numbers() -> None:
    rows = rows_of(JIANGXI.read_bytes(), A_GRADE_TAXPAYERS)
    kinds = {r.data["identifier"]: r.data["identifier_kind"] for r in rows}
    assert set(kinds.values()) == {"uscc", "legacy_reg"}
    assert kinds["360424586585180"] == "legacy_reg"
    assert kinds["36072359378986X"] == "legacy_reg"


def test_the_qinghai_key_value_file_loads_13_records_when_declared() -> None:
    payload = QINGHAI.read_bytes()
    rows = rows_of(payload, TAX_BLACKLIST, format="keyvalue")
    lines = payload.decode("utf-8").splitlines()
    first_keys = [n for n, line in enumerate(lines, start=1) if line.startswith("纳税人名称,")]
    assert len(rows) == 13
    assert [r.line_no for r in rows] == first_keys
    assert [r for r in rows if r.errors] == []
    assert rows[0].data["name"] == "青海立群矿业有限公司"
    assert rows[0].data["identifier"] == "91630000MA758H952T"


def test_key_value_values_split_over_cells_are_joined_as_written() -> None:
    rows = rows_of(QINGHAI.read_bytes(), TAX_BLACKLIST, format="keyvalue")
    assert "2020年10月19日至2020年12月14日期间" in rows[2].data["reason"]
    assert rows[2].raw["注册地址"] == "青海省西宁市城北区朝阳东路25-11室"


def test_the_qinghai_file_uploaded_as_csv_fails_with_one_clear_message() -> None:
    payload = QINGHAI.read_bytes()
    for fmt in (None, "csv"):
        with pytest.raises(ImportRejected) as caught:
            parse(payload, TAX_BLACKLIST, format=fmt)
        assert caught.value.message == KEYVALUE_MESSAGE


def test_the_key_value_mapping_prefers_the_taxpayer_number_over_the_organisation_code() -> None:
    mapping = map_file_headers(QINGHAI.read_bytes(), TAX_BLACKLIST, format="keyvalue")
    by_header = {c.header: c for c in mapping.columns}
    assert mapping.errors == []
    assert by_header["纳税人识别号"].field == "identifier"
    assert by_header["组织机构代码"].field is None
    assert "taken by '纳税人识别号'" in by_header["组织机构代码"].note


def test_a_table_chosen_as_key_value_is_refused() -> None:
    with pytest.raises(ImportRejected, match="does not look like a key/value layout"):
        parse(JIANGXI.read_bytes(), A_GRADE_TAXPAYERS, format="keyvalue")


def test_the_szse_workbook_maps_names_aliases_and_region() -> None:
    mapping = map_file_headers(SZSE.read_bytes(), ListSchema())
    fields = {c.header: c.field for c in mapping.columns if c.field}
    assert mapping.errors == []
    assert fields == {
        "公司全称": "name",
        "英文名称": "name_en",
        "A股简称": "aliases",
        "B股 简 称": "aliases",
        "城     市": "region",
    }
    assert {c.header for c in mapping.uncertain} == {"A股简称", "B股 简 称"}


def test_the_szse_workbook_loads_270_rows() -> None:
    rows = rows_of(SZSE.read_bytes())
    assert len(rows) == 270
    assert [r.line_no for r in rows] == list(range(2, 272))
    assert [r for r in rows if r.errors] == []
    shenzhen = rows[1].data
    assert shenzhen["name"] == "深圳市物业发展(集团)股份有限公司"
    assert shenzhen["aliases"] == ["深物业A", "深物业B"]
    assert shenzhen["name_en"] == "ShenZhen Properties & Resources Development (Group) Ltd."
    assert shenzhen["region"] == "440300"


def test_a_legacy_xls_workbook_loads_from_its_first_sheet_with_data() -> None:
    schema = ListSchema(extra_fields=[FieldSpec("fine", "罚款金额", "decimal")])
    rows = rows_of(SMALL_XLS.read_bytes(), schema)
    assert detect_format(SMALL_XLS.read_bytes()) == "xls"
    assert [r.line_no for r in rows] == [2, 3, 4]
    assert [r.data["decided_on"] for r in rows] == [date(2023, 1, 5), date(2023, 2, 1), date(2023, 3, 1)]
    assert rows[0].raw["罚款金额（万元）"] == "12.5"
    assert rows[2].warnings == ["identifier: Unified Social Credit Code check digit does not match"]


# Encodings and delimiters


def test_random_bytes_are_refused_with_the_offset_and_line() -> None:
    payload = "名称,统一社会信用代码\n示例有限公司,91110000600037341L\n".encode() + b"\xff\xfe\x80\x81abc\n"
    with pytest.raises(ImportRejected) as caught:
        parse(payload, ListSchema())
    offset = payload.index(b"\xff")
    assert caught.value.message.startswith("the file is not valid UTF-8 or GBK/GB18030 text")
    assert f"byte offset {offset} (line 3)" in caught.value.message


def test_utf8_with_a_bom_maps_its_first_header() -> None:
    payload = "\ufeff名称,统一社会信用代码\n示例有限公司,91110000600037341L\n".encode()
    assert only_row(payload).data["name"] == "示例有限公司"


def test_excel_unicode_text_is_read() -> None:
    payload = "名称\t统一社会信用代码\r\n示例有限公司\t91110000600037341L\r\n".encode("utf-16")
    assert only_row(payload).data["identifier"] == "91110000600037341L"


def test_short_gbk_text_that_is_also_valid_utf8_is_read_as_gbk() -> None:
    assert detect_encoding("农业,医院\n".encode("gbk")) == "gb18030"
    assert detect_encoding("农业,医院\n".encode()) == "utf-8"
    assert detect_encoding("Société Générale,café\n".encode()) == "utf-8"


@pytest.mark.parametrize(("line", "delimiter"), [("名称,代码", ","), ("名称\t代码", "\t"), ("名称;代码", ";"),
                                                 ("名称，代码", ","), ('"a,b";c;d', ";")])  # fmt: skip
def test_the_delimiter_is_sniffed_and_a_full_width_comma_is_not_one(line: str, delimiter: str) -> None:
    assert sniff_delimiter(line) == delimiter


def test_semicolon_separated_gbk_is_read() -> None:
    payload = "名称;统一社会信用代码\n示例有限公司;91110000600037341L\n".encode("gbk")
    assert only_row(payload).data["name"] == "示例有限公司"


# CSV layout


def test_ragged_rows_are_row_errors_and_blank_lines_are_skipped() -> None:
    payload = "名称,统一社会信用代码,事由\n\n甲公司,91110000600037341L,x\n乙公司,91310115591693856A\n丙公司,91310110666007217T,y,z\n".encode()
    rows = rows_of(payload)
    assert [(r.line_no, r.errors) for r in rows] == [
        (3, []),
        (4, ["row has 2 cells but the header has 3"]),
        (5, ["row has 4 cells but the header has 3"]),
    ]


def test_trailing_empty_columns_are_ignored() -> None:
    payload = "名称,统一社会信用代码,,\n示例有限公司,91110000600037341L,,\n".encode()
    row = only_row(payload)
    assert row.errors == []
    assert list(row.raw) == ["名称", "统一社会信用代码"]


def test_line_numbers_count_lines_inside_quoted_cells() -> None:
    payload = '名称,事由\n甲公司,"第一行\n第二行"\n乙公司,z\n'.encode()
    rows = rows_of(payload)
    assert [r.line_no for r in rows] == [2, 4]
    assert rows[0].data["reason"] == "第一行\n第二行"


@pytest.mark.parametrize("payload", [b"", b"  \r\n\n", "\ufeff".encode()])
def test_an_empty_file_is_refused(payload: bytes) -> None:
    with pytest.raises(ImportRejected, match="the file has no rows"):
        parse(payload, ListSchema())


def test_a_header_without_rows_is_refused() -> None:
    with pytest.raises(ImportRejected) as caught:
        parse("名称,统一社会信用代码\n\n".encode(), ListSchema())
    assert caught.value.message == "the file has no rows"


def test_a_huge_cell_is_a_row_error_and_is_not_kept() -> None:
    payload = ("名称,事由\n甲公司," + "字" * 20_000 + "\n乙公司,短\n").encode()
    rows = rows_of(payload)
    assert rows[0].errors == ["reason: cell is larger than 32 KiB"]
    assert "reason" not in rows[0].data
    assert rows[0].raw["事由"].endswith("[20,000 characters, not kept]")
    assert rows[1].errors == []


def test_a_line_over_the_row_limit_is_skipped_without_reading_it_whole() -> None:
    payload = ("名称,事由\n甲公司," + "x" * 3_000_000 + "\n乙公司,短\n").encode()
    rows = rows_of(payload)
    assert [(r.line_no, r.errors) for r in rows] == [(2, ["line is longer than 1024 KiB"]), (3, [])]


def test_formula_cells_are_kept_with_a_warning() -> None:
    payload = '名称,事由\n"=HYPERLINK(""http://x"",""点击"")",x\n乙公司,"+cmd|\' /C calc\'!A0"\n'.encode()
    rows = rows_of(payload)
    assert rows[0].data["name"] == '=HYPERLINK("http://x","点击")'
    assert rows[0].warnings == ["name: looks like a spreadsheet formula; kept as text"]
    assert rows[1].warnings == ["reason: looks like a spreadsheet formula; kept as text"]


def test_nul_bytes_are_row_errors() -> None:
    row = only_row("名称,事由\n甲公司,a\x00b\n".encode())
    assert row.errors == ["reason: contains a NUL byte"]


def test_the_row_limit_stops_the_import_with_a_clear_message() -> None:
    payload = ("名称\n" + "".join(f"公司{i}\n" for i in range(10))).encode()
    rows = parse(payload, ListSchema(), limits=Limits(max_rows=3))
    with pytest.raises(ImportRejected, match="the file has more than 3 rows; split it into smaller files"):
        list(rows)


def test_the_row_limit_comes_from_settings(settings) -> None:  # type: ignore[no-untyped-def]
    settings.UPLOAD_MAX_ROWS = 2
    payload = "名称\n甲公司\n乙公司\n丙公司\n".encode()
    with pytest.raises(ImportRejected, match="more than 2 rows"):
        rows_of(payload)


def test_an_incremental_file_may_hold_only_removals() -> None:
    schema = ListSchema(required=["name", "identifier", "reason"])
    payload = "统一社会信用代码,操作\n91110000600037341L,移出\n91310115591693856A,新增\n".encode()
    rows = rows_of(payload, schema)
    assert rows[0].errors == []
    assert rows[0].data["action"] == "remove"
    assert rows[1].errors == ["name: required field is empty", "reason: required field is empty"]


def test_html_and_pdf_downloads_are_refused_by_name() -> None:
    with pytest.raises(ImportRejected, match="web page"):
        detect_format(b"\xef\xbb\xbf<html><body><table><tr><td>x</td></tr></table></body></html>")
    with pytest.raises(ImportRejected, match="PDF"):
        detect_format(b"%PDF-1.7\n...")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ImportRejected, match="unknown file format 'ods'"):
        parse(b"x", ListSchema(), format="ods")


# Headers


def test_headers_are_matched_despite_padding_width_stars_and_case() -> None:
    headers = ["*名  称", "ＵＳＣＣ", "地      区", "【决定日期】", "\ufeff罚款金额（万元）", "Published_On:"]
    schema = ListSchema(extra_fields=[FieldSpec("fine", "罚款金额", "decimal")])
    mapping = map_headers(headers, schema)
    assert [c.field for c in mapping.columns] == [
        "name",
        "identifier",
        "region",
        "decided_on",
        "fine",
        "published_on",
    ]
    assert [c.confidence for c in mapping.columns] == [
        "exact",
        "synonym",
        "synonym",
        "synonym",
        "synonym",
        "exact",
    ]
    assert mapping.errors == []


def test_a_better_match_wins_over_a_weaker_one_for_the_same_field() -> None:
    mapping = map_headers(["名称", "统一社会信用代码", "纳税人识别号", "城市", "省份"], ListSchema())
    assert [c.field for c in mapping.columns] == ["name", "identifier", None, "region", None]
    assert mapping.errors == []


def test_the_field_named_in_brackets_is_matched() -> None:
    mapping = map_headers(
        ["行政相对人名称", "行政相对人代码_1(统一社会信用代码)", "行政相对人代码_2(工商注册号)"], ListSchema()
    )
    assert [c.field for c in mapping.columns] == ["name", "identifier", None]


def test_two_equally_good_columns_for_one_field_reject_the_file() -> None:
    payload = "名称,证件号码,身份证号码\n张三,110102199101010078,110102199101010078\n".encode()
    with pytest.raises(ImportRejected, match="columns '证件号码' and '身份证号码' both map to identifier"):
        parse(payload, ListSchema())


def test_an_override_settles_a_conflict_and_can_ignore_a_column() -> None:
    payload = "名称,证件号码,身份证号码\n张三,110102199101010078,x\n".encode()
    row = only_row(payload, overrides={"身份证号码": None})
    assert row.data["identifier_kind"] == "person_id"
    assert "身份证号码" in row.raw


def test_an_override_takes_the_field_from_a_matching_column() -> None:
    mapping = map_headers(["名称", "简称", "公司全称"], ListSchema(), {"公司全称": "name", "名称": "aliases"})
    assert [c.field for c in mapping.columns] == ["aliases", "aliases", "name"]
    assert mapping.errors == []


def test_an_override_to_an_unknown_field_is_an_error() -> None:
    mapping = map_headers(["名称", "备注"], ListSchema(), {"备注": "remarks"})
    assert mapping.errors == ["column '备注': unknown field 'remarks'"]


def test_a_fuzzy_match_is_flagged_for_confirmation_and_can_be_confirmed() -> None:
    mapping = map_headers(["失信企业名称", "identifer"], ListSchema())
    assert [(c.field, c.confidence) for c in mapping.columns] == [("name", "fuzzy"), ("identifier", "fuzzy")]
    confirmed = map_headers(["失信企业名称", "identifer"], ListSchema(), mapping.as_overrides())
    assert [c.confidence for c in confirmed.columns] == ["override", "override"]


def test_a_missing_required_column_rejects_the_file() -> None:
    schema = ListSchema(required=["name", "identifier"])
    with pytest.raises(
        ImportRejected, match=r"no column for the required field identifier \(统一社会信用代码\)"
    ):
        parse("名称,备注\n甲公司,x\n".encode(), schema)


def test_a_schema_survives_its_json_form() -> None:
    schema = ListSchema(
        extra_fields=[FieldSpec("grade", "等级", "choice", synonyms=["信用等级"], choices=["A", "B"])],
        subject_types=["legal_person"],
        required=["name", "identifier", "grade"],
    )
    assert ListSchema.from_json(json.loads(json.dumps(schema.to_json()))) == schema
    assert ListSchema.from_json(None) == ListSchema()


@pytest.mark.parametrize(
    "data",
    [
        {"extra_fields": [{"name": "name"}]},
        {"extra_fields": [{"name": "x", "type": "blob"}]},
        {"extra_fields": [{"name": "Bad Name"}]},
        {"subject_types": ["robot"]},
        {"required": ["nothing"]},
        {"colour": "red"},
    ],
)
def test_an_inconsistent_schema_is_refused(data: dict) -> None:
    with pytest.raises(ValueError):
        ListSchema.from_json(data)


# XLSX safety


def test_defusedxml_is_installed_so_openpyxl_parses_safely() -> None:
    assert openpyxl.xml.DEFUSEDXML is True


def test_a_broken_xlsx_is_refused() -> None:
    payload = SZSE.read_bytes()
    for broken in (payload[: len(payload) // 2], b"PK\x03\x04" + b"\x00" * 100):
        with pytest.raises(ImportRejected, match="not a valid XLSX file"):
            parse(broken, ListSchema())


def test_a_zip_that_is_not_a_workbook_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w/>")
    with pytest.raises(ImportRejected, match="not a valid XLSX file"):
        parse(buffer.getvalue(), ListSchema())


def test_a_decompression_bomb_is_refused_before_openpyxl_opens_it() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as part:
            for _ in range(80):
                part.write(b" " * 65536)  # 5 MiB that packs into a few KiB
    assert len(buffer.getvalue()) < 100_000
    with pytest.raises(ImportRejected, match="compressed .* to 1, which only a zip bomb does"):
        parse(buffer.getvalue(), ListSchema())


def test_a_workbook_that_unpacks_beyond_the_limit_is_refused() -> None:
    with pytest.raises(ImportRejected, match="unpacks to 0 MB, more than the 0 MB allowed"):
        parse(SZSE.read_bytes(), ListSchema(), limits=Limits(max_uncompressed_bytes=100_000))


def test_an_xlsx_declaring_xml_entities_is_refused() -> None:
    def add_entities(xml: bytes) -> bytes:
        head, _, body = xml.partition(b"?>")
        return head + b'?><!DOCTYPE worksheet [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>' + body

    payload = with_member(xlsx_bytes([["名称"], ["甲公司"]]), "xl/worksheets/sheet1.xml", add_entities)
    with pytest.raises(ImportRejected, match="declares a DOCTYPE or XML entities"):
        parse(payload, ListSchema())


def test_a_sheet_with_a_million_trailing_empty_rows_is_read_quickly() -> None:
    def stretch(xml: bytes) -> bytes:
        xml = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:A1048576"', xml)
        return xml.replace(b"</sheetData>", b'<row r="1048576"><c r="A1048576" s="0"/></row></sheetData>')

    payload = with_member(xlsx_bytes([["名称"], ["甲公司"], ["乙公司"]]), "xl/worksheets/sheet1.xml", stretch)
    started = time.monotonic()
    rows = rows_of(payload)
    assert [r.data["name"] for r in rows] == ["甲公司", "乙公司"]
    assert time.monotonic() - started < 5


def test_reading_a_sheet_stops_after_a_long_run_of_empty_rows() -> None:
    endless = itertools.chain([("名称",), ("甲公司",)], itertools.repeat((None, "  ")))
    records = list(sheet_rows(endless, Limits(max_empty_rows=1000)))
    assert records == [(1, ["名称"], None), (2, ["甲公司"], None)]


def test_rows_after_a_short_gap_are_still_read() -> None:
    payload = xlsx_bytes([["名称"], ["甲公司"], [None], [None], ["乙公司"]])
    assert [r.line_no for r in rows_of(payload)] == [2, 5]


def test_xlsx_dates_and_a_header_below_blank_rows_are_read() -> None:
    payload = xlsx_bytes([[None], ["名称", "决定日期"], ["甲公司", datetime(2023, 1, 5)]])
    row = only_row(payload)
    assert (row.line_no, row.data["decided_on"], row.raw["决定日期"]) == (3, date(2023, 1, 5), "2023-01-05")


def test_an_identifier_excel_turned_into_a_number_is_an_error() -> None:
    row = only_row(xlsx_bytes([["名称", "统一社会信用代码"], ["甲公司", 9.13604007542218e17]]))
    assert row.errors == [
        "identifier: stored as a number in Excel and lost its last digits; format it as text"
    ]


# JSON Lines


def test_json_lines_are_detected_and_read() -> None:
    lines = [
        {
            "name": "甲公司",
            "identifier": "91110000600037341L",
            "aliases": ["甲", "甲司"],
            "decided_on": "2023-01-05",
        },
        {"name": "乙公司", "identifier": "91310115591693856A", "action": "remove"},
    ]
    payload = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines).encode()
    rows = rows_of(payload)
    assert detect_format(payload) == "jsonl"
    assert rows[0].data["aliases"] == ["甲", "甲司"]
    assert rows[1].data["action"] == "remove"


def test_bad_json_lines_are_row_errors() -> None:
    payload = b"\n".join(
        [
            '{"name": "甲公司"}'.encode(),
            b"[1, 2]",
            b'{"name": ',
            b'{"name": {"zh": "x"}}',
            b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        ]
    )
    rows = rows_of(payload)
    assert [(r.line_no, r.errors) for r in rows] == [
        (1, []),
        (2, ["not a JSON object"]),
        (3, ["not valid JSON: Expecting value"]),
        (4, ["name: nested values are not supported"]),
        (5, ["nested more than 20 levels deep"]),
    ]
