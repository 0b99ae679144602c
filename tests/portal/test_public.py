"""The public site through the HTTP client: search, subject page, directories, languages."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lists.identifiers import mask_person_id, person_id_hash
from lists.models import CreditList, Listing, SubjectType
from lists.services.measures import apply_measures
from tests.factories import ListingFactory, SubjectFactory
from tests.portal.api_helpers import publish

pytestmark = pytest.mark.django_db
PERSON_ID = "11010519491231002X"
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN"}


def _person(**kwargs):  # type: ignore[no-untyped-def]
    return SubjectFactory(
        subject_type=SubjectType.NATURAL_PERSON, name="张三丰", uscc=None,
        person_id_hash=person_id_hash(PERSON_ID), person_id_masked=mask_person_id(PERSON_ID), **kwargs,
    )  # fmt: skip


def _listing(subject, code="TAX_MAJOR_VIOLATION", **kwargs):  # type: ignore[no-untyped-def]
    return ListingFactory(subject=subject, credit_list=CreditList.objects.get(code=code), **kwargs)


def _body(response) -> str:  # type: ignore[no-untyped-def]
    return b"".join(response.streaming_content if response.streaming else [response.content]).decode()


def test_home_page_offers_one_search_box_in_chinese_even_to_english_browsers(client):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert response.status_code == 200
    body = _body(response)
    assert body.count('name="q"') == 1
    assert 'lang="zh-CN"' in body
    assert "信用信息查询" in body


def test_language_switch_shows_english_until_switched_back(client):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/lists/"}, follow=True)
    body = _body(response)
    assert 'lang="en"' in body
    assert "Credit lists" in body and "Entities seriously untrustworthy due to major tax violations" in body
    assert "Search credit records" in _body(client.get("/"))
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert "信用信息查询" in _body(client.get("/"))


def test_name_search_lists_subjects_with_their_lists_and_facets(client):
    subject = SubjectFactory(name="北京华盛达鑫科技有限公司")
    _listing(subject)
    response = client.get("/search/", {"q": "华盛达鑫"}, **ZH)
    assert response.status_code == 200
    body = _body(response)
    assert "北京华盛达鑫科技有限公司" in body
    assert reverse("public:subject-detail", args=[subject.pk]) in body
    assert "重大税收违法失信主体" in body  # the list, as a badge and a facet
    assert "list=TAX_MAJOR_VIOLATION" in body


def test_uscc_query_in_any_form_goes_straight_to_the_subject(client):
    subject = SubjectFactory()
    _listing(subject)
    messy = " ".join([subject.uscc[:6], subject.uscc[6:]]).lower()
    response = client.get("/search/", {"q": messy})
    assert response.status_code == 302
    assert response["Location"] == reverse("public:subject-detail", args=[subject.pk])


def test_person_id_search_never_shows_the_full_number(client):
    person = _person()
    _listing(person)
    apply_measures()
    responses = [client.get("/search/", {"q": PERSON_ID})]
    assert responses[0]["Location"] == reverse("public:subject-detail", args=[person.pk])
    responses += [
        client.get(responses[0]["Location"]),
        client.get(reverse("public:report-page", args=[person.pk])),
        client.get(reverse("public:report-pdf", args=[person.pk])),
        # A number that matches nobody is not echoed either: not in the box, the title or a link.
        client.get("/search/", {"q": "110105194912310037", "list": "TAX_MAJOR_VIOLATION"}),
        client.get("/search/", {"q": PERSON_ID.lower()[:-1] + "x"}),
    ]
    for response in responses:
        assert response.status_code in (200, 302)
        content = response.content.decode("latin-1") + str(response.headers)
        for number in (PERSON_ID, "110105194912310037", PERSON_ID.lower()):
            assert number not in content
    assert "1101**********002X" in responses[1].content.decode()
    assert "1101**********0037" in responses[4].content.decode()


def test_subject_page_groups_in_force_listings_and_shows_measures(client):
    subject = SubjectFactory(name="上海测试贸易有限公司")
    _listing(subject, reference="税稽罚〔2025〕88号", reason="虚开增值税专用发票")
    _listing(subject, code="TAX_A_GRADE", reference="A级-2025-1", reason="纳税信用评价为A级")
    _listing(subject, reference="争议〔2025〕1号", status=Listing.Status.DISPUTED)
    _listing(
        subject, reference="已到期〔2020〕1号", status=Listing.Status.EXPIRED, ended_at=timezone.now(),
        decided_on=dt.date(2020, 1, 1), expires_on=dt.date(2021, 1, 1),
    )  # fmt: skip
    apply_measures()
    response = client.get(reverse("public:subject-detail", args=[subject.pk]), **ZH)
    body = _body(response)
    assert "税稽罚〔2025〕88号" in body and "A级-2025-1" in body
    assert "复核中" in body  # the disputed listing is marked under review
    assert "已到期〔2020〕1号" not in body  # expired listings are not public
    assert body.index("黑名单") < body.index("红名单")
    assert "正在实施的惩戒措施" in body and "享有的激励措施" in body
    profile = response.context["profile"]
    assert profile.punishments and profile.incentives
    assert profile.punishments[0].measure.name_zh in body


def test_subject_page_marks_synthetic_records(client):
    subject = SubjectFactory(is_synthetic=True)
    response = client.get(reverse("public:subject-detail", args=[subject.pk]), **ZH)
    assert "合成演示数据" in _body(response)


def _queries(client, url: str, params: dict | None = None) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params or {}).status_code == 200
    return len(captured)


def test_subject_page_query_count_does_not_grow_with_records(client, django_assert_max_num_queries):
    small, big = SubjectFactory(), SubjectFactory()
    _listing(small)
    for code in ["TAX_MAJOR_VIOLATION", "SPC_DEFAULTER", "TAX_A_GRADE", "CUSTOMS_AEO"] * 3:
        _listing(big, code=code)
    apply_measures()
    url = reverse("public:subject-detail", args=[small.pk])
    assert _queries(client, url) == _queries(client, reverse("public:subject-detail", args=[big.pk]))
    with django_assert_max_num_queries(7):  # the 7th asks whether restrictions are being recomputed
        client.get(url)


def test_subject_page_reads_each_big_table_alone(client):
    """Listings, restrictions and changes are each read by the subject's index, never joined to the
    catalogue: without planner statistics such a join may read every listing of every list."""
    subject = SubjectFactory()
    publish(subject=subject)
    with CaptureQueriesContext(connection) as captured:
        client.get(reverse("public:subject-detail", args=[subject.pk]))
    big = [q["sql"] for q in captured if re.search(r'FROM "?lists_(listing|restriction|change)\b', q["sql"])]
    assert len(big) == 3
    assert not [sql for sql in big if "JOIN" in sql]


def test_a_list_taken_off_the_public_site_leaves_pages_with_its_measures_and_history(client):
    subject = SubjectFactory(name="南京隐藏测试科技有限公司")
    shown = publish(subject=subject, credit_list=CreditList.objects.get(code="TAX_MAJOR_VIOLATION"))
    hidden = publish(subject=subject, credit_list=CreditList.objects.get(code="SPC_DEFAULTER"))
    assert hidden.restrictions.exists()
    CreditList.objects.filter(code="SPC_DEFAULTER").update(is_public=False)
    profile = client.get(reverse("public:subject-detail", args=[subject.pk])).context["profile"]
    assert [listing.pk for listing in profile.listings] == [shown.pk]
    assert {r.listing_id for r in [*profile.punishments, *profile.incentives]} == {shown.pk}
    assert [change.listing_id for change in profile.history] == [shown.pk]
    listings = client.get("/search/", {"q": "隐藏测试"}).context["listings"]
    assert [listing.pk for listing in listings[subject.pk]] == [shown.pk]


def test_subject_page_orders_records_by_kind_list_and_newest_decision(client):
    subject = SubjectFactory()
    old = _listing(subject, decided_on=dt.date(2020, 1, 1))
    undated = _listing(subject, decided_on=None, expires_on=None)
    new = _listing(subject, decided_on=dt.date(2024, 1, 1))
    red = _listing(subject, code="TAX_A_GRADE")
    other = _listing(subject, code="SPC_DEFAULTER")
    profile = client.get(reverse("public:subject-detail", args=[subject.pk])).context["profile"]
    assert [x.pk for x in profile.listings] == [other.pk, undated.pk, new.pk, old.pk, red.pk]


def test_search_page_query_count_does_not_grow_with_results(client):
    for n in range(3):
        _listing(SubjectFactory(name=f"杭州少量{n}号科技有限公司"))
    for n in range(25):
        _listing(SubjectFactory(name=f"杭州大量{n}号科技有限公司"))
    assert _queries(client, "/search/", {"q": "少量"}) == _queries(client, "/search/", {"q": "大量"}) <= 10


def test_search_ignores_malformed_filters(client):
    _listing(SubjectFactory(name="广州过滤测试有限公司"))
    response = client.get("/search/", {"q": "过滤测试", "kind": "nonsense", "list": "<script>", "page": "x"})
    assert response.status_code == 200
    assert "广州过滤测试有限公司" in _body(response)
    assert "<script>" not in _body(response)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("public:agency-list", "国家税务总局"),
        ("public:list-list", "重大税收违法失信主体"),
        ("public:measure-list", "M_"),
    ],
)
def test_directories_render_with_a_fixed_number_of_queries(
    client, django_assert_max_num_queries, name, expected
):
    with django_assert_max_num_queries(8):
        response = client.get(reverse(name), **ZH)
    assert response.status_code == 200
    assert expected in _body(response)


def test_list_directory_counts_in_force_entries(client):
    _listing(SubjectFactory())
    _listing(SubjectFactory())
    response = client.get(reverse("public:list-list"))
    row = next(r for r in response.context["rows"] if r.credit_list.code == "TAX_MAJOR_VIOLATION")
    assert row.entries == 2
    assert row.last_change is None or row.last_change <= timezone.now()


def test_list_directory_marks_a_list_whose_sync_is_overdue(client):
    from lists.models import Source

    overdue = CreditList.objects.get(code="TAX_MAJOR_VIOLATION")
    fresh = CreditList.objects.get(code="TAX_A_GRADE")
    long_ago = timezone.now() - dt.timedelta(days=2)
    Source.objects.create(credit_list=overdue, url="http://127.0.0.1:9/feed", last_success_at=long_ago)
    Source.objects.create(credit_list=fresh, url="http://127.0.0.1:9/feed", last_success_at=timezone.now())
    response = client.get(reverse("public:list-list"))
    assert response.context["stale_ids"] == {overdue.pk}
    assert _body(response).count("同步逾期") == 1


def test_subject_history_shows_changes_of_in_force_listings_only(client):
    from django.db import transaction

    from lists.services.feed import record_changes

    subject = SubjectFactory()
    live = _listing(subject)
    ended = _listing(subject, status=Listing.Status.REPAIRED, ended_at=timezone.now())
    with transaction.atomic():
        record_changes([live, ended], op="add", reason="publish")
    response = client.get(reverse("public:subject-detail", args=[subject.pk]))
    assert [change.listing_id for change in response.context["profile"].history] == [live.pk]
    assert "机关公布" in _body(response)


def test_search_results_are_paginated_and_the_url_carries_the_query(client):
    for n in range(23):
        _listing(SubjectFactory(name=f"成都分页{n:02d}号科技有限公司"))
    first = client.get("/search/", {"q": "分页"})
    assert first.context["result"].total == 23
    assert len(first.context["result"].hits) == 20
    assert "?q=%E5%88%86%E9%A1%B5&amp;page=2" in _body(first)
    second = client.get("/search/", {"q": "分页", "page": 2})
    assert len(second.context["result"].hits) == 3


def test_facet_links_narrow_the_search(client):
    _listing(SubjectFactory(name="重庆分面甲科技有限公司"))
    _listing(SubjectFactory(name="重庆分面乙科技有限公司"), code="TAX_A_GRADE")
    response = client.get("/search/", {"q": "分面"})
    facets = dict(response.context["facets"])
    tax_a = next(f for f in facets["名单"] if f.value == "TAX_A_GRADE")
    assert tax_a.count == 1 and not tax_a.selected
    narrowed = client.get("/search/" + tax_a.url)
    assert [hit.subject.name for hit in narrowed.context["result"].hits] == ["重庆分面乙科技有限公司"]
    assert any(f.selected for f in dict(narrowed.context["facets"])["名单"])
