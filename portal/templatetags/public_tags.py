"""Template filters of the public site: pick the name or label for the current language."""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

register = template.Library()
_CJK = re.compile("[\u3400-\u9fff\uf900-\ufaff]")


def _is_english() -> bool:
    return (get_language() or "").startswith("en")


@register.filter
def localized(obj: Any, attribute: str = "name") -> str:
    """Return obj.<attribute>_en in English when it is filled in, else obj.<attribute>_zh."""
    english = getattr(obj, f"{attribute}_en", "") if _is_english() else ""
    return english or getattr(obj, f"{attribute}_zh", "") or str(obj)


@register.filter
def bilingual(label: Any) -> str:
    """Return the Chinese or English half of a bilingual choice label ("黑名单 Blacklist")."""
    words = str(label).split(" ")
    cjk = [i for i, word in enumerate(words) if _CJK.search(word)]
    if not cjk:
        return str(label)
    first, last = cjk[0], cjk[-1]
    chosen = words[:first] + words[last + 1 :] if _is_english() else words[: last + 1]
    return " ".join(chosen) or str(label)


@register.filter
def province(code: str) -> str:
    """Return the province name for a region code (its first two digits)."""
    from lists.services.statistics import PROVINCES

    names = PROVINCES.get((code or "")[:2])
    if names is None:
        return code or "—"
    return names[1] if _is_english() else names[0]


_MATCH_LABELS = {
    "identifier": _("identifier"),
    "exact_name": _("exact name"),
    "name": _("name"),
    "alias": _("short or former name"),
    "former": _("former name"),
    "pinyin": _("pinyin"),
    "fuzzy": _("similar name"),
    "english": _("English name"),
    "fragment": _("part of the name"),
}


@register.filter
def match_label(key: str) -> str:
    """Return the translated label of a search match kind."""
    return str(_MATCH_LABELS.get(key, key))


@register.filter
def get_item(mapping: dict[Any, Any], key: Any) -> Any:
    """Return mapping[key], or an empty list."""
    return mapping.get(key, []) if mapping else []


_CHANGE_LABELS = {
    "add": _("Added"),
    "modify": _("Modified"),
    "remove": _("Removed"),
    "publish": _("published by the agency"),
    "expire": _("publication period ended"),
    "repair": _("credit repair approved"),
    "rollback": _("publication rolled back"),
    "correct": _("corrected"),
    "demo": _("demo data"),
}


@register.filter
def change_label(code: str) -> str:
    """Return the translated label of a change-feed op or reason code."""
    return str(_CHANGE_LABELS.get(code, code))
