"""The search engine against real PostgreSQL: identifiers, name tiers, ranking, typos, filters, facets."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from stdnum.cn import ric

from lists.identifiers import mask_person_id, person_id_hash
from lists.models import CreditList, Listing, SubjectType
from lists.search import query as engine
from lists.search.query import SearchFilters, search_subjects
from tests.factories import ListingFactory, SubjectFactory, valid_uscc

pytestmark = pytest.mark.django_db

ALL = SearchFilters(status="all")


def _listed(**kwargs):  # type: ignore[no-untyped-def]
    """Create a subject with one in-force listing on the tax blacklist."""
    subject = SubjectFactory(**kwargs)
    ListingFactory(subject=subject)
    return subject


def _names(q: str, filters: SearchFilters | None = None) -> list[str]:
    return [hit.subject.name for hit in search_subjects(q, filters=filters).hits]


def _person_id() -> str:
    body = "11010519491231002"
    return body + ric.calc_check_digit(body + "?")


# --- identifiers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        lambda c: c,
        lambda c: c.lower(),
        lambda c: c.translate({i: i + 0xFEE0 for i in range(0x21, 0x7F)}),  # full-width
        lambda c: f"{c[:2]} {c[2:8]} {c[8:]}",
        lambda c: f"{c[:8]}-{c[8:]}",
    ],
)
def test_a_uscc_in_any_common_form_goes_straight_to_the_subject(form) -> None:  # type: ignore[no-untyped-def]
    subject = _listed(name="深圳市华盛达科技有限公司", uscc=valid_uscc(42))
    _listed(name="深圳市华盛达贸易有限公司")
    result = search_subjects(form(subject.uscc))
    assert result.identifier_match == subject
    assert [(h.subject, h.matched) for h in result.hits] == [(subject, ["identifier"])]
    assert result.total == 1


def test_an_organisation_code_with_or_without_hyphen_and_a_legacy_number_find_the_subject() -> None:
    subject = _listed(name="华南农机销售有限公司", uscc=valid_uscc(7), org_code="MA5FX1234")
    legacy = _listed(name="黑龙江广播电视台", uscc=None, legacy_ids=["230103352171954"])
    assert search_subjects("MA5FX1234").identifier_match == subject
    assert search_subjects("ma5fx123-4").identifier_match == subject
    assert search_subjects("230103 352171954").identifier_match == legacy


def test_a_person_is_found_by_id_number_through_its_hash_and_the_number_never_leaks() -> None:
    number = _person_id()
    person = _listed(
        name="王伟",
        subject_type=SubjectType.NATURAL_PERSON,
        uscc=None,
        person_id_hash=person_id_hash(number),
        person_id_masked=mask_person_id(number),
    )
    with CaptureQueriesContext(connection) as queries:
        result = search_subjects(number.lower()[:6] + " " + number[6:].lower())
    assert result.identifier_match == person
    assert all(number not in q["sql"] and number.lower() not in q["sql"] for q in queries.captured_queries)
    assert number not in repr(result)


def test_an_unknown_person_id_number_finds_nothing_and_is_not_searched_as_a_name() -> None:
    _listed(name="王伟")
    number = _person_id()
    with CaptureQueriesContext(connection) as queries:
        result = search_subjects(number)
    assert result.hits == [] and result.identifier_match is None
    assert all(number not in q["sql"] for q in queries.captured_queries)


def test_a_first_generation_15_digit_id_number_finds_the_person_by_hash() -> None:
    old_number = "110105491231002"  # 1949-12-31, the 18-digit form is stored as the hash
    person = _listed(
        name="李娜",
        subject_type=SubjectType.NATURAL_PERSON,
        uscc=None,
        person_id_hash=person_id_hash(old_number),
    )
    result = search_subjects(old_number)
    assert result.identifier_match == person and result.hits[0].matched == ["identifier"]


def test_an_unknown_status_filter_is_refused() -> None:
    with pytest.raises(ValueError):
        search_subjects("宏远", filters=SearchFilters(status="deleted"))


# --- names -----------------------------------------------------------------------------------


def test_full_name_ranks_first_then_longer_names_containing_it() -> None:
    longer = _listed(name="平安银行股份有限公司深圳分行")
    exact = _listed(name="平安银行股份有限公司")
    result = search_subjects("平安银行股份有限公司")
    assert [h.subject for h in result.hits] == [exact, longer]
    assert result.hits[0].matched[0] == "exact_name"
    assert result.hits[0].score > result.hits[1].score


@pytest.mark.parametrize("fragment", ["盛达", "华盛达", "达科技", "盛达科技有"])
def test_any_fragment_of_two_or_more_characters_matches(fragment: str) -> None:
    _listed(name="深圳市华盛达科技有限公司")
    _listed(name="北京市宏远贸易有限公司")
    assert _names(fragment) == ["深圳市华盛达科技有限公司"]


def test_a_fragment_needs_adjacent_characters() -> None:
    _listed(name="金华商通商贸有限公司")  # holds 华商 and 商贸, but not 华商贸
    assert _names("华商贸") == []


def test_short_former_and_english_names_are_matched_and_labelled() -> None:
    subject = _listed(
        name="深圳市物业发展(集团)股份有限公司",
        aliases=["深物业A"],
        former_names=["深圳市物业发展总公司"],
        name_en="ShenZhen Properties & Resources Development (Group) Ltd.",
    )
    assert search_subjects("深物业Ａ").hits[0].matched[0] == "alias"
    assert search_subjects("深圳市物业发展总公司").hits[0].matched[0] == "former"
    hit = search_subjects("shenzhen properties & resources development (group) ltd").hits[0]
    assert (hit.subject, hit.matched[0]) == (subject, "english")


def test_name_without_region_or_legal_form_finds_the_subject() -> None:
    _listed(name="深圳市物业发展(集团)股份有限公司")
    _listed(name="广西柳工机械股份有限公司")
    assert _names("物业发展") == ["深圳市物业发展(集团)股份有限公司"]
    assert _names("深圳物业发展") == ["深圳市物业发展(集团)股份有限公司"]
    assert _names("柳工机械") == ["广西柳工机械股份有限公司"]


def test_traditional_and_full_width_queries_match_simplified_names() -> None:
    _listed(name="华联控股股份有限公司")
    _listed(name="TCL科技集团股份有限公司")
    assert _names("華聯控股") == ["华联控股股份有限公司"]
    assert _names("ＴＣＬ科技") == ["TCL科技集团股份有限公司"]


def test_pinyin_full_syllables_and_initials() -> None:
    _listed(name="深圳市华盛达科技有限公司")
    _listed(name="北京宏远贸易有限公司")
    assert _names("huashengda") == ["深圳市华盛达科技有限公司"]
    assert _names("hua sheng da ke ji") == ["深圳市华盛达科技有限公司"]
    assert _names("hsdkj") == ["深圳市华盛达科技有限公司"]
    assert search_subjects("hsd").hits[0].matched == ["pinyin"]


def test_english_names_by_whole_name_first_words_or_all_words() -> None:
    bank = _listed(name="平安银行股份有限公司", name_en="Ping An Bank Co., Ltd.")
    insurance = _listed(
        name="中国平安保险(集团)股份有限公司", name_en="Ping An Insurance (Group) Company of China, Ltd."
    )
    assert [h.subject for h in search_subjects("PING AN BANK CO., LTD.").hits] == [bank]
    assert {h.subject for h in search_subjects("ping an").hits} == {bank, insurance}
    assert [h.subject for h in search_subjects("ping an insur").hits] == [insurance]
    assert [h.subject for h in search_subjects("insurance ping an").hits] == [insurance]


@pytest.mark.parametrize(
    "typo",
    [
        "深圳市华盛达科枝有限公司",  # substitution
        "华盛达科枝",
        "华盛科技有限公司",  # deletion
        "华盛达达科技",  # insertion
    ],
)
def test_one_character_typo_in_a_name_of_four_or_more_characters(typo: str) -> None:
    _listed(name="深圳市华盛达科技有限公司")
    _listed(name="深圳市宏远贸易有限公司")
    result = search_subjects(typo)
    assert [h.subject.name for h in result.hits][:1] == ["深圳市华盛达科技有限公司"]
    assert result.hits[0].matched == ["fuzzy"]


def test_ranking_exact_then_alias_then_core_prefix_fragment_shorter_first_ties_by_id() -> None:
    fragment_long = _listed(name="广东华盛达建筑工程有限公司")
    fragment_short = _listed(name="上海华盛达电子有限公司")
    fragment_tie = _listed(name="上海华盛达电子有限公司")
    prefix = _listed(name="华盛达物流有限公司")
    core = _listed(name="上海市华盛达有限公司")
    alias = _listed(name="深圳市华盛达实业股份有限公司", aliases=["华盛达"])
    exact = _listed(name="华盛达", subject_type=SubjectType.NATURAL_PERSON, uscc=None)
    result = search_subjects("华盛达")
    assert [h.subject for h in result.hits] == [
        exact,
        alias,
        core,
        prefix,
        fragment_short,
        fragment_tie,
        fragment_long,
    ]
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)


def test_too_broad_queries_are_refused_without_touching_the_index() -> None:
    _listed(name="北京市宏远贸易有限公司")
    for q in ("有限公司", "北京市", "股份有限公司", "a"):
        result = search_subjects(q)
        assert result.too_broad and result.hits == [] and result.total == 0
    assert not search_subjects("宏远").too_broad


def test_fragments_of_common_words_find_exact_names_only() -> None:
    _listed(name="深圳市华盛房地产开发有限公司")
    exact = _listed(name="地产开", subject_type=SubjectType.NATURAL_PERSON, uscc=None)
    assert search_subjects("产开发").too_broad
    assert [h.subject for h in search_subjects("地产开").hits] == [exact]


def test_pinyin_without_the_region_ranks_below_the_english_name_with_it() -> None:
    company = _listed(name="济南合宇文化传媒股份有限公司", name_en="Jinan Heyu Culture Media Co., Ltd.")
    _listed(name="何宇", subject_type=SubjectType.NATURAL_PERSON, uscc=None)
    result = search_subjects("jinan heyu")
    assert result.hits[0].subject == company and result.total == 2


# --- filters and facets ----------------------------------------------------------------------


def _on(subject, code: str, status: str = Listing.Status.ACTIVE):  # type: ignore[no-untyped-def]
    ended = None if status in Listing.IN_FORCE else timezone.now()
    return ListingFactory(
        subject=subject, credit_list=CreditList.objects.get(code=code), status=status, ended_at=ended
    )


def test_filters_by_list_agency_kind_subject_type_region_and_status() -> None:
    tax = SubjectFactory(name="深圳宏远科技有限公司", region_code="440305")
    customs = SubjectFactory(name="广州宏远贸易有限公司", region_code="440106")
    person = SubjectFactory(
        name="宏远", subject_type=SubjectType.NATURAL_PERSON, uscc=None, region_code="110105"
    )
    expired = SubjectFactory(name="宏远物流有限公司", region_code="310115")
    unlisted = SubjectFactory(name="宏远食品有限公司")
    _on(tax, "TAX_MAJOR_VIOLATION")
    _on(customs, "CUSTOMS_AEO")
    _on(person, "TAX_MAJOR_VIOLATION")
    _on(expired, "TAX_MAJOR_VIOLATION", Listing.Status.EXPIRED)

    def found(**kwargs) -> set[str]:  # type: ignore[no-untyped-def]
        return {h.subject.name for h in search_subjects("宏远", filters=SearchFilters(**kwargs)).hits}

    assert found() == {tax.name, customs.name, person.name}
    assert found(lists=["CUSTOMS_AEO"]) == {customs.name}
    assert found(agencies=["gacc"]) == {customs.name}
    assert found(kinds=["blacklist"]) == {tax.name, person.name}
    assert found(subject_types=[SubjectType.NATURAL_PERSON]) == {person.name}
    assert found(regions=["44"]) == {tax.name, customs.name}
    assert found(regions=["4403"]) == {tax.name}
    assert found(regions=["440106"]) == {customs.name}
    assert found(status="expired") == {expired.name}
    assert found(status="repaired") == set()
    assert found(status="all") == {tax.name, customs.name, person.name, expired.name, unlisted.name}


def test_facets_count_matching_subjects_per_value() -> None:
    a = SubjectFactory(name="深圳宏远科技有限公司", region_code="440305")
    b = SubjectFactory(name="广州宏远贸易有限公司", region_code="440106")
    c = SubjectFactory(name="北京宏远物流有限公司", region_code="110105")
    _on(a, "TAX_MAJOR_VIOLATION")
    _on(a, "CUSTOMS_AEO")
    _on(b, "CUSTOMS_AEO")
    _on(c, "TAX_MAJOR_VIOLATION", Listing.Status.REPAIRED)
    facets = search_subjects("宏远").facets
    assert {(v, n) for v, _, n in facets["lists"]} == {("CUSTOMS_AEO", 2), ("TAX_MAJOR_VIOLATION", 1)}
    assert {(v, n) for v, _, n in facets["kinds"]} == {("redlist", 2), ("blacklist", 1)}
    assert ("gacc", 2) in {(v, n) for v, _, n in facets["agencies"]}
    assert facets["regions"] == [("44", "广东省", 2)]
    assert facets["subject_types"][0][::2] == (SubjectType.LEGAL_PERSON, 2)
    assert {(v, n) for v, _, n in search_subjects("宏远", filters=ALL).facets["status"]} == {
        ("active", 2),
        ("repaired", 1),
    }
    by_city = search_subjects("宏远", filters=SearchFilters(regions=["44"])).facets["regions"]
    assert {(v, label) for v, label, _ in by_city} == {("4403", "深圳市"), ("4401", "广州市")}


def test_totals_and_facets_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "CAP", 5)
    for _ in range(7):
        _listed(name="宏远贸易有限公司")
    result = search_subjects("宏远", per_page=3)
    assert (result.total, result.total_is_capped, len(result.hits)) == (5, True, 3)
    assert sum(n for _, _, n in result.facets["lists"]) == 5
    assert len(search_subjects("宏远", per_page=3, page=2).hits) == 2


def test_pages_do_not_overlap_and_keep_the_order() -> None:
    for i in range(5):
        _listed(name=f"宏远{'贸易' * (i + 1)}有限公司")
    first = [h.subject for h in search_subjects("宏远", per_page=2).hits]
    second = [h.subject for h in search_subjects("宏远", per_page=2, page=2).hits]
    everything = [h.subject for h in search_subjects("宏远", per_page=20).hits]
    assert first + second == everything[:4]


@pytest.mark.parametrize("q", ["宏远", "hongyuan", "宏远贸易有限公司", "宏远貿易0有限公可"])
def test_a_search_issues_a_fixed_number_of_queries_whatever_the_result_size(
    q: str, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    for i in range(30):
        subject = SubjectFactory(
            name=f"宏远贸易{i}有限公司", aliases=[f"宏远{i}"], name_en=f"Hongyuan {i} Trading"
        )
        ListingFactory(subject=subject)
        ListingFactory(subject=subject, credit_list=CreditList.objects.get(code="CUSTOMS_AEO"))
    with django_assert_max_num_queries(6):  # savepoint, search, typo, page subjects, release, stats
        result = search_subjects(q, per_page=50)
        [(h.subject.name, h.subject.uscc) for h in result.hits]
    assert result.total > 0


def test_identifier_search_issues_a_fixed_number_of_queries(django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    subject = _listed(name="宏远贸易有限公司")
    with django_assert_max_num_queries(1):
        assert search_subjects(subject.uscc).identifier_match == subject


def test_a_statement_timeout_gives_an_empty_flagged_result(monkeypatch: pytest.MonkeyPatch) -> None:
    _listed(name="宏远贸易有限公司")
    monkeypatch.setattr(engine, "STATEMENT_TIMEOUT_MS", 1)
    slow = "(SELECT 1 AS subject_id, 1 AS tier, 'x' AS feature, 1 AS len FROM pg_sleep(0.05))"
    monkeypatch.setattr(
        engine,
        "_name_matches",
        lambda cursor, forms, filters: engine._run_ranked(cursor, [(slow, [])], filters),
    )
    result = search_subjects("宏远")
    assert result.timed_out and result.hits == []
    monkeypatch.undo()
    assert _names("宏远") == ["宏远贸易有限公司"]  # the caller's transaction still works


def test_expiry_dates_do_not_matter_only_listing_status() -> None:
    subject = SubjectFactory(name="宏远贸易有限公司")
    ListingFactory(subject=subject, expires_on=timezone.localdate() + dt.timedelta(days=1))
    assert _names("宏远") == [subject.name]
