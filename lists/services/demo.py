"""Create synthetic demo data: realistic subjects and listings, clearly marked synthetic.

Rows go in with COPY in chunks and the secondary indexes of the big tables are rebuilt once at
the end, because row-by-row index maintenance makes a million-subject load take an hour.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dateutil.relativedelta import relativedelta
from django.db import connection, transaction
from django.utils import timezone
from stdnum.cn import ric, uscc

from ..identifiers import mask_person_id, person_id_hash
from ..models import Batch, CreditList, Subject, SubjectType
from .feed import record_changes_sql
from .measures import apply_measures
from .subjects import NAME_COLUMNS, name_rows

CHUNK = 20_000
REGIONS = [
    ("110105", "北京", "Beijing"), ("310115", "上海", "Shanghai"), ("440305", "深圳", "Shenzhen"),
    ("440106", "广州", "Guangzhou"), ("330106", "杭州", "Hangzhou"), ("320106", "南京", "Nanjing"),
    ("510107", "成都", "Chengdu"), ("420106", "武汉", "Wuhan"), ("500103", "重庆", "Chongqing"),
    ("120101", "天津", "Tianjin"), ("610113", "西安", "Xi'an"), ("430104", "长沙", "Changsha"),
    ("370102", "济南", "Jinan"), ("350203", "厦门", "Xiamen"), ("360102", "南昌", "Nanchang"),
    ("630103", "西宁", "Xining"), ("230103", "哈尔滨", "Harbin"), ("530102", "昆明", "Kunming"),
    ("450103", "南宁", "Nanning"), ("340104", "合肥", "Hefei"), ("410105", "郑州", "Zhengzhou"),
]  # fmt: skip
TRADE_CHARS = (
    "华盛达鑫源泰恒通宏远兴隆瑞丰嘉禾聚德永安金昌盛世博创新科联合中天海宇东方正大明辉"
    "星光汇邦佳诚信和顺利福康美润泽启航卓越锦程凯旋振鹏飞腾龙凤祥云峰岳川江河湖林森"
)
INDUSTRIES = [
    ("科技", "Technology"), ("贸易", "Trading"), ("建筑工程", "Construction Engineering"),
    ("食品", "Food"), ("物流", "Logistics"), ("餐饮管理", "Catering Management"),
    ("房地产开发", "Real Estate Development"), ("电子商务", "E-commerce"), ("医药", "Pharmaceutical"),
    ("机械设备", "Machinery"), ("环保", "Environmental"), ("文化传媒", "Culture Media"),
    ("农业发展", "Agricultural Development"), ("信息技术", "Information Technology"), ("劳务", "Labour Services"),
]  # fmt: skip
LEGAL_FORMS = [("有限公司", "Co., Ltd."), ("有限责任公司", "Co., Ltd."), ("股份有限公司", "Co., Ltd.")]
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红文斌宇浩凯晨阳"
REASONS = {
    "blacklist": [
        "有履行能力而拒不履行生效法律文书确定义务",
        "虚开增值税专用发票",
        "拖欠农民工工资",
        "提供虚假材料",
    ],
    "redlist": ["纳税信用评价为A级", "海关高级认证企业", "守信典型企业"],
    "register": ["未按规定报送年度报告", "通过登记的住所无法联系", "列入名录"],
    "penalty": ["未按规定办理纳税申报", "生产经营掺杂掺假产品", "违反安全生产规定"],
    "licence": ["准予行政许可", "食品经营许可", "建筑施工许可"],
}
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@dataclass
class DemoSummary:
    subjects: int = 0
    listings: int = 0
    restrictions: int = 0
    changes: int = 0
    lists: dict[str, int] = field(default_factory=dict)


def seed_demo(*, subjects: int, seed: int = 1) -> DemoSummary:
    """Create `subjects` synthetic subjects with listings spread over the national lists."""
    rng = random.Random(seed)
    lists = list(CreditList.objects.exclude(code__in=["ADMIN_LICENCE"]))
    if not lists:
        raise RuntimeError("no lists loaded: run load_reference first")
    summary = DemoSummary()
    offset = Subject.objects.filter(is_synthetic=True).count()
    with transaction.atomic(), _indexes_dropped(["lists_subjectname", "lists_listing", "lists_change"]):
        batches = {cl.pk: _demo_batch(cl) for cl in lists}
        first_listing_id = _next_id("lists_listing")
        for start in range(0, subjects, CHUNK):
            count = min(CHUNK, subjects - start)
            _insert_chunk(rng, seed, offset + start, count, lists, batches, summary)
        summary.changes = record_changes_sql(
            "l.id >= %s AND l.first_batch_id = ANY(%s)",
            [first_listing_id, list(batches.values())],
            op="add",
            reason="demo",
        )
        # The staff dashboard and the API's lists show when each list was last published.
        CreditList.objects.filter(code__in=summary.lists).update(last_published_at=timezone.now())
    summary.restrictions = apply_measures().derived
    # Fresh planner statistics: without them (autovacuum may be off or not yet round) queries
    # that join a million rows to the small list tables are planned on guesses.
    with connection.cursor() as cursor:
        for table in (
            "lists_subject",
            "lists_subjectname",
            "lists_listing",
            "lists_change",
            "lists_restriction",
        ):
            cursor.execute(f"ANALYZE {table}")  # noqa: S608 - fixed names
    return summary


def _demo_batch(credit_list: CreditList) -> int:
    now = timezone.now()
    batch = Batch.objects.create(
        credit_list=credit_list, origin=Batch.Origin.DEMO, mode=Batch.Mode.INCREMENTAL,
        status=Batch.Status.PUBLISHED, original_filename="synthetic demo data",
        approval_waived_by="seed_demo (synthetic data, not an agency decision)", published_at=now,
    )  # fmt: skip
    return batch.pk


def _next_id(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")  # noqa: S608 - fixed names
        return int(cursor.fetchone()[0])


def _reserve_ids(table: str, count: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)",  # noqa: S608
            [count],
        )
        return [row[0] for row in cursor.fetchall()]


def _insert_chunk(rng, seed, start, count, lists, batches, summary) -> None:  # type: ignore[no-untyped-def]
    subject_ids = _reserve_ids("lists_subject", count)
    subjects = [_fake_subject(rng, seed, start + i) for i in range(count)]
    now = timezone.now()
    subject_rows, names, listing_rows = [], [], []
    for subject_id, subject in zip(subject_ids, subjects, strict=True):
        subject_rows.append((subject_id, *subject.row(), now, now))
        names += name_rows(subject_id, **subject.names())
        for credit_list in _pick_lists(rng, lists, subject.subject_type):
            listing_rows.append(_fake_listing(rng, subject_id, credit_list, batches[credit_list.pk], now))
            summary.lists[credit_list.code] = summary.lists.get(credit_list.code, 0) + 1
    _copy("lists_subject", SUBJECT_COLUMNS, subject_rows)
    _copy("lists_subjectname", NAME_COLUMNS, names)
    _copy("lists_listing", LISTING_COLUMNS, listing_rows)
    summary.subjects += count
    summary.listings += len(listing_rows)


SUBJECT_COLUMNS = (
    "id", "subject_type", "name", "name_en", "aliases", "former_names", "uscc", "org_code", "legacy_ids",
    "person_id_hash", "person_id_masked", "region_code", "is_synthetic", "created_at", "updated_at",
)  # fmt: skip
LISTING_COLUMNS = (
    "subject_id", "credit_list_id", "source_key", "reference", "reason", "severity", "decided_on",
    "published_on", "expires_on", "status", "extra", "content_hash", "first_batch_id", "last_batch_id",
    "first_seen_at", "last_seen_at", "last_changed_at",
)  # fmt: skip


@dataclass
class _FakeSubject:
    subject_type: str
    name: str
    name_en: str
    aliases: list[str]
    uscc: str | None
    person_id: str | None
    region_code: str

    def row(self) -> tuple[object, ...]:
        hashed = person_id_hash(self.person_id) if self.person_id else None
        masked = mask_person_id(self.person_id) if self.person_id else ""
        org_code = self.uscc[8:17] if self.uscc else ""
        return (
            self.subject_type, self.name, self.name_en, self.aliases, [], self.uscc, org_code, [],
            hashed, masked, self.region_code, True,
        )  # fmt: skip

    def names(self) -> dict[str, object]:
        return {"name": self.name, "aliases": self.aliases, "former_names": [], "name_en": self.name_en}


def _fake_subject(rng: random.Random, seed: int, index: int) -> _FakeSubject:
    region_code, city, city_en = rng.choice(REGIONS)
    roll = rng.random()
    if roll < 0.10:
        name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
        person_id = _fake_person_id(rng, region_code, index)
        return _FakeSubject(SubjectType.NATURAL_PERSON, name, "", [], None, person_id, region_code)
    trade = "".join(rng.sample(TRADE_CHARS, k=rng.choice((2, 2, 3))))
    industry, industry_en = rng.choice(INDUSTRIES)
    if roll < 0.15:
        name = f"{city}市{trade}{industry}经营部"
        return _FakeSubject(
            SubjectType.INDIVIDUAL_BUSINESS,
            name,
            "",
            [],
            _fake_uscc(seed, index, "92", region_code),
            None,
            region_code,
        )
    form, form_en = rng.choice(LEGAL_FORMS)
    name = f"{city}{trade}{industry}{form}" if rng.random() < 0.5 else f"{city}市{trade}{industry}{form}"
    name_en = f"{city_en} {_pinyin_title(trade)} {industry_en} {form_en}" if rng.random() < 0.2 else ""
    aliases = [trade + industry[:2]] if rng.random() < 0.5 else []
    return _FakeSubject(
        SubjectType.LEGAL_PERSON,
        name,
        name_en,
        aliases,
        _fake_uscc(seed, index, "91", region_code),
        None,
        region_code,
    )


def _pinyin_title(text: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(text)).title()


def _fake_uscc(seed: int, index: int, prefix: str, region_code: str) -> str:
    """Return a unique, check-digit-valid USCC derived from the subject's index."""
    # An affine map modulo 31^9 is a bijection, so codes stay unique but do not look sequential.
    number, digits = (index * 1_000_003 + seed * 7_919) % len(USCC_CHARS) ** 9, []
    for _ in range(9):
        number, rest = divmod(number, len(USCC_CHARS))
        digits.append(USCC_CHARS[rest])
    body = prefix + region_code + "".join(reversed(digits))
    return body + uscc.calc_check_digit(body)


def _fake_person_id(rng: random.Random, region_code: str, index: int) -> str:
    # Derived from the index, not drawn, so that no two demo persons share a number.
    born = dt.date(1950, 1, 1) + dt.timedelta(days=(index // 1000) % (365 * 50))
    body = f"{region_code}{born:%Y%m%d}{index % 1000:03d}"
    return body + ric.calc_check_digit(body + "?")  # stdnum skips the last character


def _pick_lists(rng: random.Random, lists: list[CreditList], subject_type: str) -> list[CreditList]:
    fitting = [cl for cl in lists if subject_type in cl.subject_types] or lists
    picked = [rng.choice(fitting)]
    if rng.random() < 0.2:
        second = rng.choice(fitting)
        picked += [second] if second != picked[0] else []
    return picked


def _fake_listing(
    rng: random.Random, subject_id: int, credit_list: CreditList, batch_id: int, now: dt.datetime
) -> tuple[object, ...]:
    decided = timezone.localdate() - dt.timedelta(days=rng.randrange(1, 3 * 365))
    severity, expires = _expiry(rng, credit_list, decided)
    reference = f"DEMO-{credit_list.code}-{subject_id}"
    reason = rng.choice(REASONS[credit_list.kind])
    content = f"{reference}|{reason}|{decided}|{expires}"
    return (
        subject_id, credit_list.pk, reference, reference, reason, severity, decided,
        decided + dt.timedelta(days=rng.randrange(0, 10)), expires, "active", "{}",
        hashlib.sha256(content.encode()).hexdigest(), batch_id, batch_id, now, now, now,
    )  # fmt: skip


def _expiry(rng: random.Random, credit_list: CreditList, decided: dt.date) -> tuple[str, dt.date | None]:
    rule = credit_list.period_rule or {}
    if rule.get("kind") == "fixed":
        return "", decided + relativedelta(months=rule["months"])
    if rule.get("kind") == "tiered":
        severity = rng.choice(list(rule["tiers"]))
        return severity, decided + relativedelta(months=rule["tiers"][severity])
    return "", None


def _copy(table: str, columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    raw = connection.connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # noqa: S608
        for row in rows:
            copy.write_row(row)


@contextmanager
def _indexes_dropped(tables: list[str]) -> Iterator[None]:
    """Drop the tables' secondary indexes (not primary keys) and rebuild them afterwards."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.tablename = ANY(%s)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
            """,
            [tables],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        skips_fk_checks = _skip_fk_checks(cursor)
    yield
    with connection.cursor() as cursor:
        if skips_fk_checks:
            cursor.execute("SET LOCAL session_replication_role = origin")
        else:
            # Django's foreign keys are deferred; check them now, since CREATE INDEX refuses to
            # run on a table with pending trigger events.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            cursor.execute(definition)


def _skip_fk_checks(cursor: Any) -> bool:
    """Turn off foreign-key triggers for this transaction when the role may (superuser).

    Demo rows reference ids this function just reserved, so the checks cannot fail; running
    them costs minutes per million rows.
    """
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if not cursor.fetchone()[0]:
        return False
    cursor.execute("SET LOCAL session_replication_role = replica")
    return True
