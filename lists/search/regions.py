"""Chinese administrative-division names (GB/T 2260) as name prefixes to strip.

The names come from the table python-stdnum ships for USCC checks (`stdnum/cn/loc.dat`), so
there is no second copy to keep up to date. Historical names are kept: old registrations still
carry them (襄樊, 忻州地区).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

from stdnum import numdb

from lists.search.hanzi import to_simplified

# Longest first, so 自治区 is tried before 区.
_SUFFIXES = ("特别行政区", "自治区", "自治州", "自治县", "自治旗", "地区", "特区", "省", "市", "县", "区", "盟")  # fmt: skip
# 55 minority names; 新疆维吾尔自治区 has no 族, 延边朝鲜族自治州 has.
_ETHNIC = [
    "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶", "白", "土家", "哈尼", "哈萨克",
    "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水", "东乡", "纳西", "景颇", "柯尔克孜", "土", "达斡尔", "仫佬",
    "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌", "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克",
    "德昂", "保安", "裕固", "京", "塔塔尔", "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺", "各",
]  # fmt: skip
_ETHNIC_TAIL = re.compile(
    "(?:" + "|".join(sorted([e + "族" for e in _ETHNIC] + ["维吾尔"], key=len, reverse=True)) + ")+$"
)
_ANNOTATION = re.compile(r"\[[^\]]*\]")
_HISTORICAL = re.compile(r"^\[[^\]]*-\d{4}\]")
# Table rows that are not place names (市辖区 = "city districts"), or so generic that a
# trade name could start with them.
_NOT_PLACES = {
    "市辖区",
    "县",
    "市",
    "市区",
    "郊区",
    "城区",
    "矿区",
    "新区",
    "林区",
    "东区",
    "南区",
    "西区",
    "北区",
}
_NOT_PLACE_WORDS = re.compile("直辖|行政单位|行政区划|办事处")
# Short forms that are far more often a trade name than the place (阿里地区 vs 阿里巴巴).
_SHORT_FORM_EXCEPTIONS = {"阿里"}


@cache
def region_names() -> frozenset[str]:
    """Return province, prefecture and county names, with suffix, and provinces and current
    prefectures without it (广东省, 广东, 深圳市, 深圳, 南山区).

    A county without its suffix (南山, 滨江, 安宁) is left out: it is as often the trade name
    (杭州滨江房产集团, 四川安宁铁钛), and stripping a trade name loses the match, while a place
    left in the core still lets a fragment query match.
    """
    names: set[str] = {"香港", "澳门", "台湾"}
    for level, name, is_current in _divisions():
        names.add(name)
        short = short_region_name(name)
        if level != "county" and is_current and len(short) >= 2 and short not in _SHORT_FORM_EXCEPTIONS:
            names.add(short)
    return frozenset(names)


def short_region_name(name: str) -> str:
    """Return a division name without its 省/市/县/自治区 suffix and minority names."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    stripped = _ETHNIC_TAIL.sub("", name)
    return stripped if len(stripped) >= 2 else name


def _divisions() -> Iterator[tuple[str, str, bool]]:
    """Yield (level, name, is_current) for every division in the GB/T 2260 table."""
    for _length, _low, _high, props, children in numdb.get("cn/loc").prefixes:
        yield from _names("province", props.get("province", ""))
        for _clength, code, _chigh, cprops, _ in children:
            level = "prefecture" if code.endswith("00") else "county"
            yield from _names(level, cprops.get("county", ""))


def _names(level: str, field: str) -> Iterator[tuple[str, str, bool]]:
    """Yield the usable names in one table field such as "[-1982]忻县地区,[1983-]忻州地区"."""
    for part in field.split(","):
        name = to_simplified(_ANNOTATION.sub("", part).strip())
        if len(name) < 2 or name in _NOT_PLACES or _NOT_PLACE_WORDS.search(name):
            continue
        yield level, name, not _HISTORICAL.match(part.strip())
