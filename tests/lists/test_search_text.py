"""Name normalisation for search, checked on real names from the shared sample files."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest
from django.db import connection
from opencc import OpenCC

from lists.search.hanzi import to_simplified
from lists.search.text import (
    cjk_bigrams,
    core_name,
    is_too_broad,
    latin_name,
    name_fields,
    normalize_name,
    query_forms,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "search"


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _variants_by_subject() -> dict[str, list[dict[str, str]]]:
    variants = defaultdict(list)
    for row in _rows("subject_names.csv"):
        variants[row["key"]].append(name_fields(row["name"], kind=row["kind"]))
    return variants


def _hits(q: str, fields: dict[str, str]) -> bool:
    """Return whether the matching rules in lists/search/text.py's docstring find this variant."""
    forms = query_forms(q)
    bigrams = set(fields["bigrams"].split())
    return (
        forms.normalized == fields["normalized"]
        or forms.core == fields["core"]
        or bool(forms.latin and forms.latin == fields["latin"])
        or (set(forms.bigrams.split()) <= bigrams and forms.normalized in fields["normalized"])
        or (
            bool(forms.core_bigrams)
            and set(forms.core_bigrams.split()) <= bigrams
            and forms.core in fields["core"]
        )
    )


def test_full_width_brackets_and_traditional_characters_normalise_alike() -> None:
    names = [
        "深圳市物业发展（集团）股份有限公司",
        "深圳市物业发展(集团)股份有限公司",
        "深圳市物業發展 (集團) 股份有限公司",
    ]
    assert {normalize_name(n) for n in names} == {"深圳市物业发展集团股份有限公司"}


def test_normalising_keeps_only_lower_case_letters_and_digits() -> None:
    assert normalize_name("柳    工") == "柳工"
    assert normalize_name("*ST炼石") == "st炼石"
    assert normalize_name("ＴＣＬ科技　集团") == "tcl科技集团"
    assert normalize_name("Ping An Bank Co., Ltd.") == "pinganbankcoltd"


def test_the_fast_simplified_conversion_agrees_with_opencc() -> None:
    s2t, t2s = OpenCC("s2t"), OpenCC("t2s")
    for row in _rows("subject_names.csv"):
        traditional = s2t.convert(row["name"])
        assert to_simplified(traditional) == t2s.convert(traditional)
        assert to_simplified(row["name"]) == t2s.convert(row["name"])


@pytest.mark.parametrize(
    ("name", "core"),
    [
        ("平安银行股份有限公司", "平安银行"),
        ("深圳市物业发展(集团)股份有限公司", "物业发展"),
        ("深圳物业发展集团", "物业发展"),
        ("广西柳工机械股份有限公司", "柳工机械"),
        ("内蒙古福瑞医疗科技股份有限公司", "福瑞医疗科技"),
        ("汇洲智能技术集团股份有限公司", "汇洲智能技术"),
        ("彪凤五金（天津）有限公司", "彪凤五金"),
        ("益海（佳木斯）生物质能发电有限公司", "益海生物质能发电"),
        ("中国建设银行股份有限公司佳木斯分行", "中国建设银行佳木斯"),
        ("五常市兴盛乡晶鑫水稻种植农民专业合作社", "晶鑫水稻种植"),
        ("慈溪市三北浩燕绣品厂（普通合伙）", "三北浩燕绣品"),
        ("宁波前湾新区瑞霞晨饭店（个体工商户）", "瑞霞晨饭店"),
        ("桦南县益农农机销售有限公司", "益农农机销售"),
        ("*ST炼石", "炼石"),
        ("深物业A", "深物业"),
        ("福瑞股份", "福瑞"),
    ],
)
def test_core_name_drops_region_legal_form_and_stock_marks(name: str, core: str) -> None:
    assert core_name(name) == core


def test_core_name_keeps_a_trade_name_that_is_also_a_county() -> None:
    # 滨江 is a district of Hangzhou and 安宁 a city in Yunnan, but here they are the trade name.
    assert core_name("杭州滨江房产集团股份有限公司") == "滨江房产"
    assert core_name("四川安宁铁钛股份有限公司") == "安宁铁钛"


@pytest.mark.parametrize("name", ["黄山", "北京市", "张三", "金华明", "有限公司"])
def test_core_name_is_never_shorter_than_two_characters(name: str) -> None:
    assert len(core_name(name)) >= 2
    assert core_name("金华明") == "金华明"


def test_bigrams_overlap_and_a_single_character_stands_alone() -> None:
    assert cjk_bigrams("平安银行") == "平安 安银 银行"
    assert cjk_bigrams("柳") == "柳"
    assert cjk_bigrams("tcl科技") == "tc cl l科 科技"


def test_name_fields_of_a_listed_bank() -> None:
    assert name_fields("平安银行股份有限公司", kind="name") == {
        "normalized": "平安银行股份有限公司",
        "core": "平安银行",
        "bigrams": "平安 安银 银行 行股 股份 份有 有限 限公 公司",
        "pinyin": "pinganyinhang",
        "initials": "payh",
        "latin": "",
    }


def test_bigrams_add_those_of_a_core_that_joins_across_removed_words() -> None:
    fields = name_fields("中国建设银行股份有限公司佳木斯分行", kind="name")
    assert "行佳" in fields["bigrams"].split()  # 中国建设银行|佳木斯, only in the core
    assert len(fields["bigrams"].split()) == len(set(fields["bigrams"].split()))


def test_pinyin_reads_polyphones_by_phrase() -> None:
    assert name_fields("重庆长安汽车股份有限公司", kind="name")["pinyin"] == "changanqiche"
    assert name_fields("重庆银行股份有限公司", kind="name")["pinyin"] == "yinhang"


def test_short_names_keep_their_region_in_pinyin_as_stock_apps_do() -> None:
    assert name_fields("贵州茅台", kind="alias")["initials"] == "gzmt"
    assert name_fields("贵州茅台酒股份有限公司", kind="name")["initials"] == "mtj"
    assert name_fields("*ST炼石", kind="former")["pinyin"] == "lianshi"


@pytest.mark.parametrize(
    ("english", "latin"),
    [
        ("Ping An Bank Co., Ltd.", "ping an bank"),
        ("SHENZHEN CHINA BICYCLE COMPANY(HOLDINGS) LIMITED", "shenzhen china bicycle"),
        (
            "ShenZhen Properties & Resources Development (Group) Ltd.",
            "shenzhen properties resources development",
        ),
        ("Hubei Mailyard Share Co.,Ltd", "hubei mailyard"),
        ("AISINO CO.LTD", "aisino"),
        (
            "China Aluminum International Engineering Corporation Limited",
            "china aluminum international engineering",
        ),
    ],
)
def test_latin_name_drops_legal_form_words(english: str, latin: str) -> None:
    assert latin_name(english) == latin
    assert name_fields(english, kind="en")["latin"] == latin
    assert name_fields(english, kind="en")["core"] == latin.replace(" ", "")


def test_a_chinese_name_keeps_its_latin_brand_only() -> None:
    assert name_fields("TCL科技集团股份有限公司", kind="name")["latin"] == "tcl"
    assert name_fields("ST炼石", kind="alias")["latin"] == ""


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        name_fields("平安银行", kind="short")


@pytest.mark.parametrize("row", _rows("name_queries.csv"), ids=lambda r: f"{r['query_type']}:{r['query']}")
def test_every_sample_query_finds_its_subject(row: dict[str, str]) -> None:
    variants = _variants_by_subject()[row["expected_key"]]
    assert any(_hits(row["query"], fields) for fields in variants)


@pytest.mark.parametrize(
    "row",
    [r for r in _rows("name_queries.csv") if r["query_type"] == "full_name_without_legal_form"],
    ids=lambda r: r["query"],
)
def test_a_name_without_legal_form_finds_the_full_name_alone(row: dict[str, str]) -> None:
    full = next(r["name"] for r in _rows("subject_names.csv") if r["key"] == row["expected_key"])
    assert _hits(row["query"], name_fields(full, kind="name"))


@pytest.mark.parametrize(
    ("query", "full_name"),
    [
        ("深圳物业发展", "深圳市物业发展(集团)股份有限公司"),  # region without 市, no 集团
        ("物业发展集团股份有限公司", "深圳市物业发展(集团)股份有限公司"),
        ("深圳市物業發展（集團）", "深圳市物业发展(集团)股份有限公司"),
        ("福瑞股份", "内蒙古福瑞医疗科技股份有限公司"),  # former short name, no alias stored
        ("建设银行佳木斯分行", "中国建设银行股份有限公司佳木斯分行"),
        ("益海生物质能发电", "益海（佳木斯）生物质能发电有限公司"),
    ],
)
def test_queries_match_a_full_name_through_its_core(query: str, full_name: str) -> None:
    assert _hits(query, name_fields(full_name, kind="name"))


def test_english_query_without_legal_form_matches_the_english_name() -> None:
    assert _hits("ping an bank", name_fields("Ping An Bank Co., Ltd.", kind="en"))
    assert _hits("Hubei Mailyard", name_fields("Hubei Mailyard Share Co.,Ltd", kind="en"))


def test_pinyin_queries_offer_the_core_form() -> None:
    forms = query_forms("shenzhenshiwuyefazhan")
    assert forms.is_pinyin and "wuyefazhan" in forms.pinyin
    assert forms.initials == ()  # i and u never start a syllable
    assert query_forms("payh").pinyin == () and query_forms("payh").initials == ("payh",)
    assert query_forms("ping an").initials == ("pa",)
    assert not query_forms("平安").is_pinyin


def test_query_bigrams_are_of_the_normalised_query() -> None:
    forms = query_forms("深圳华强")
    assert forms.bigrams == "深圳 圳华 华强"
    assert forms.core == "华强" and forms.core_bigrams == "华强"
    assert query_forms("北京银行").core_bigrams == ""  # core 银行 would match every bank


@pytest.mark.parametrize(
    "q",
    [
        "有限公司",
        "北京市",
        "广东省深圳市",
        "股份有限公司",
        "责任公",
        "限公",
        "科技",
        "科技有限公司",
        "集团",
        "Co., Ltd.",
        "a",
        "公",
        "中国",
        "北京市朝阳区",
    ],
)
def test_legal_form_and_region_only_queries_are_too_broad(q: str) -> None:
    assert is_too_broad(q)
    assert query_forms(q).is_too_broad


@pytest.mark.parametrize(
    "q", ["平安", "北京银行", "中国银行", "深圳华强", "华为科技", "李娜", "Ping An", "payh", "柳工"]
)
def test_queries_with_a_name_in_them_are_not_too_broad(q: str) -> None:
    assert not is_too_broad(q)


@pytest.mark.django_db
def test_bigram_tokens_survive_the_simple_text_search_parser() -> None:
    names = [r["name"] for r in _rows("subject_names.csv")] + [
        "𠮷野家〇一々木",
        "3M中国",
        "ａ１Ｂ２科技",
        "Société Générale",
    ]
    tokens = sorted({t for n in names for t in name_fields(n, kind="name")["bigrams"].split()})
    with connection.cursor() as cursor:
        cursor.execute(
            "select t, array(select lexeme from unnest(to_tsvector('simple', t))) from unnest(%s::text[]) t",
            [tokens],
        )
        changed = [(token, lexemes) for token, lexemes in cursor.fetchall() if lexemes != [token]]
    assert changed == []


@pytest.mark.django_db
def test_a_fragment_query_matches_the_stored_bigrams_in_postgres() -> None:
    fields = name_fields("中国建设银行股份有限公司佳木斯分行", kind="name")
    with connection.cursor() as cursor:
        for q, expected in [
            ("建设银行", True),
            ("佳木斯分行", True),
            ("建设银行佳木斯", True),
            ("工商银行", False),
        ]:
            forms = query_forms(q)
            bigrams = forms.core_bigrams or forms.bigrams
            cursor.execute(
                "select to_tsvector('simple', %s) @@ plainto_tsquery('simple', %s)",
                [fields["bigrams"], bigrams],
            )
            assert cursor.fetchone()[0] is expected, q
