"""What a credit list's upload may contain: the core columns every list takes plus its own extras.

A list's schema is stored as JSON on its CreditList row (`ListSchema.to_json()`); the core
columns and their header synonyms live here in code, so a new synonym helps every list at once.
Synonyms are grouped in tiers: when two columns of one file match the same field, the one in
the earlier tier wins (纳税人识别号 over 组织机构代码, 城市 over 地区) and the other is left unmapped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TEXT = "text"
DATE = "date"
YEAR = "year"
INTEGER = "integer"
DECIMAL = "decimal"
CHOICE = "choice"
LIST = "list"
IDENTIFIER = "identifier"
REGION = "region"
SUBJECT_TYPE = "subject_type"
ACTION = "action"
FIELD_TYPES = (TEXT, DATE, YEAR, INTEGER, DECIMAL, CHOICE, LIST)

# Subject types as in the catalogue (shared/data/catalogue.json), with the words agencies use.
SUBJECT_TYPE_WORDS: dict[str, tuple[str, ...]] = {
    "legal_person": (
        "法人",
        "企业",
        "企业法人",
        "法人企业",
        "法人及其他组织",
        "公司",
        "单位",
        "legal person",
    ),
    "unincorporated_org": ("非法人组织", "其他组织", "非法人企业", "其他"),
    "natural_person": ("自然人", "个人", "公民", "natural person", "person"),
    "individual_business": ("个体工商户", "个体户", "个体", "individual business"),
    "farmer_cooperative": ("农民专业合作社", "合作社", "专业合作社"),
    "social_organization": ("社会组织", "社会团体", "民办非企业单位", "基金会"),
    "public_institution": ("事业单位", "机关", "机关事业单位"),
    "procurement_agency": ("采购代理机构", "政府采购代理机构"),
    "legal_person_officers": ("法定代表人", "主要负责人", "负责人", "相关责任人"),
}
SUBJECT_TYPES = tuple(SUBJECT_TYPE_WORDS)

ACTIONS: dict[str, tuple[str, ...]] = {
    "add": ("新增", "增加", "列入", "add", "insert", "create", "new"),
    "update": ("更新", "修改", "变更", "update", "change", "modify"),
    "remove": ("删除", "移出", "撤销", "移除", "remove", "delete", "revoke"),
}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass
class FieldSpec:
    """One column a list accepts: canonical name, display label, type and header synonyms."""

    name: str
    label: str = ""
    type: str = TEXT
    synonyms: list[str] = field(default_factory=list)
    # Lower-priority synonym tiers: used when no column matches an earlier tier.
    fallbacks: list[list[str]] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    multi: bool = False  # several source columns may feed it (A股简称 and B股简称 → aliases)

    def tiers(self) -> list[list[str]]:
        """Return the synonyms grouped in tiers, best first; name and label lead tier 0."""
        return [[s for s in (self.name, self.label) if s] + self.synonyms, *self.fallbacks]

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form stored with a list's schema."""
        data: dict[str, Any] = {"name": self.name, "label": self.label, "type": self.type}
        optional = {"synonyms": self.synonyms, "fallbacks": self.fallbacks, "choices": self.choices}
        return data | {k: v for k, v in optional.items() if v} | ({"multi": True} if self.multi else {})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldSpec:
        """Return a field read from its JSON form, checking name and type."""
        unknown = set(data) - {"name", "label", "type", "synonyms", "fallbacks", "choices", "multi"}
        if unknown:
            raise ValueError(f"unknown keys in field: {sorted(unknown)}")
        spec = cls(**data)
        if not _NAME_RE.match(spec.name):
            raise ValueError(f"bad field name {spec.name!r}: use lower-case letters, digits and _")
        if spec.type not in FIELD_TYPES:
            raise ValueError(f"field {spec.name}: unknown type {spec.type!r}")
        if spec.type == CHOICE and not spec.choices:
            raise ValueError(f"field {spec.name}: a choice field needs choices")
        return spec


def _core(name: str, label: str, type_: str, *tiers: list[str], multi: bool = False) -> FieldSpec:
    return FieldSpec(name, label, type_, list(tiers[0]), [list(t) for t in tiers[1:]], multi=multi)


CORE_FIELDS: tuple[FieldSpec, ...] = (
    _core(
        "name", "名称", TEXT,
        ["企业名称", "纳税人名称", "当事人名称", "被执行人姓名/名称", "被执行人名称", "被执行人姓名",
         "单位名称", "机构名称", "主体名称", "公司名称", "公司全称", "企业全称", "全称", "行政相对人名称",
         "相对人名称", "失信主体名称", "市场主体名称", "失信被执行人名称", "姓名/名称", "名称/姓名", "姓名",
         "当事人", "企业(机构)名称", "name", "company name", "entity name", "subject name", "full name"],
    ),
    _core(
        "identifier", "统一社会信用代码", IDENTIFIER,
        ["社会信用代码", "信用代码", "统一代码", "纳税人识别号", "纳税识别号", "税号", "证件号码", "身份证号码",
         "身份证号", "公民身份号码", "证照号码", "统一社会信用代码/身份证号码", "统一社会信用代码/注册号",
         "组织机构代码/身份证号码", "行政相对人代码", "被执行人证件号码", "uscc", "credit code",
         "unified social credit code", "id number", "tax id"],
        ["组织机构代码", "注册号", "工商注册号", "营业执照注册号", "税务登记号", "税务登记证号", "事业单位证书号",
         "社会组织登记证号"],
    ),
    _core("subject_type", "主体类型", SUBJECT_TYPE,
          ["主体类别", "当事人类型", "行政相对人类别", "相对人类别", "主体性质", "subject type", "entity type"]),
    _core(
        "aliases", "别名", LIST,
        ["曾用名", "简称", "企业简称", "公司简称", "证券简称", "股票简称", "其他名称", "历史名称", "alias",
         "former names", "short name"],
        multi=True,
    ),
    _core("name_en", "英文名称", TEXT, ["英文名", "外文名称", "英文全称", "english name", "name (english)"]),
    _core(
        "region", "行政区划代码", REGION,
        ["地区代码", "区划代码", "行政区划", "所属区划", "区域代码", "region code", "area code"],
        ["城市", "所在城市", "所在市", "地市"],
        ["省份", "所在省份", "省"],
        ["地区", "所在地区", "所属地区", "区域", "所在地"],
    ),
    _core(
        "reference", "文书号", TEXT,
        ["决定文书号", "处罚决定书文号", "行政处罚决定书文号", "执行依据文号", "案号", "决定书文号", "文号",
         "认定文书号", "列入文书号", "决定文号", "执行案号", "document number", "case number",
         "decision number"],
    ),
    _core(
        "reason", "列入原因", TEXT,
        ["失信情形", "事由", "违法事实", "主要违法事实", "列入事由", "列入理由", "失信行为", "违法行为",
         "认定理由", "失信被执行人行为具体情形", "主要违法事实及处理情况", "facts"],
    ),
    _core(
        "decided_on", "决定日期", DATE,
        ["作出决定日期", "列入日期", "认定日期", "处罚决定日期", "决定时间", "作出决定时间", "列入时间",
         "认定时间", "decision date"],
    ),
    _core("published_on", "公布日期", DATE,
          ["发布日期", "公示日期", "公布时间", "发布时间", "公示时间", "publication date"]),
    _core(
        "expires_on", "公示截止日期", DATE,
        ["有效期至", "移出日期", "公示截止期", "有效期截止日期", "截止日期", "处罚有效期", "到期日期", "失效日期",
         "expiry date", "valid until"],
    ),
    _core("action", "操作", ACTION, ["操作类型", "变更类型", "op", "operation"]),
)  # fmt: skip
CORE_NAMES = frozenset(f.name for f in CORE_FIELDS)


@dataclass
class ListSchema:
    """The columns one credit list accepts: core columns plus `extra_fields`, and its rules."""

    extra_fields: list[FieldSpec] = field(default_factory=list)
    subject_types: list[str] = field(default_factory=lambda: list(SUBJECT_TYPES))
    required: list[str] = field(default_factory=lambda: ["name"])

    def fields(self) -> list[FieldSpec]:
        """Return every field, core first."""
        return [*CORE_FIELDS, *self.extra_fields]

    def field(self, name: str) -> FieldSpec | None:
        """Return the field with this canonical name, if the list has it."""
        return next((f for f in self.fields() if f.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form stored on the CreditList."""
        return {
            "extra_fields": [f.to_json() for f in self.extra_fields],
            "subject_types": list(self.subject_types),
            "required": list(self.required),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ListSchema:
        """Return a schema read from its JSON form; raise ValueError if it is inconsistent."""
        data = dict(data or {})
        unknown = set(data) - {"extra_fields", "subject_types", "required"}
        if unknown:
            raise ValueError(f"unknown keys in list schema: {sorted(unknown)}")
        schema = cls(extra_fields=[FieldSpec.from_json(f) for f in data.get("extra_fields", [])])
        schema.subject_types = list(data.get("subject_types", schema.subject_types))
        schema.required = list(data.get("required", schema.required))
        schema.check()
        return schema

    def check(self) -> None:
        """Raise ValueError if extras clash with core fields or rules name unknown things."""
        names = [f.name for f in self.extra_fields]
        clashes = sorted(CORE_NAMES.intersection(names) | {n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"extra fields clash with core or each other: {clashes}")
        bad_types = sorted(set(self.subject_types) - set(SUBJECT_TYPES))
        if bad_types:
            raise ValueError(f"unknown subject types: {bad_types}")
        missing = sorted(set(self.required) - CORE_NAMES - set(names))
        if missing:
            raise ValueError(f"required fields not in the schema: {missing}")
