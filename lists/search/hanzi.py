"""Traditional → simplified conversion and pinyin for Chinese names, fast enough for bulk seeding.

Both wrap the installed libraries' own dictionaries. The libraries' public calls are too slow for
1.5 M names (OpenCC ≈ 24 µs and pypinyin ≈ 130 µs per name here), so the common cases take a
shortcut and give the same answer:

* OpenCC only runs when the text holds a character that t2s would change; most names are
  already simplified.
* Pinyin is a forward longest match over pypinyin's phrase dictionary (the same idea as its
  default `mmseg` segmenter), so 银行 still reads yin-hang and not yin-xing.
"""

from __future__ import annotations

import os
from functools import cache

import opencc
from opencc import OpenCC
from pypinyin.phonetic_symbol import phonetic_symbol
from pypinyin.phrases_dict import phrases_dict
from pypinyin.pinyin_dict import pinyin_dict

_LONGEST_PHRASE = 6  # Longer dictionary phrases are idioms, not company names.
_TONELESS = str.maketrans(
    {mark: plain.rstrip("1234") for mark, plain in phonetic_symbol.items() if len(mark) == 1}
)


@cache
def _t2s() -> OpenCC:
    """Return the OpenCC converter, built once because building it parses its dictionaries."""
    return OpenCC("t2s")


@cache
def _traditional_chars() -> frozenset[str]:
    """Return every character that OpenCC's t2s tables would change, alone or in a phrase."""
    folder = os.path.join(os.path.dirname(opencc.__file__), "dictionary")
    changing: set[str] = set()
    for filename in ("TSCharacters.txt", "TSPhrases.txt"):
        with open(os.path.join(folder, filename), encoding="utf-8") as lines:
            for line in lines:
                source, _, targets = line.rstrip("\n").partition("\t")
                target = targets.split(" ")[0]
                changing.update(s for s, t in zip(source, target.ljust(len(source)), strict=False) if s != t)
    return frozenset(changing)


def to_simplified(text: str) -> str:
    """Return `text` in simplified Chinese (OpenCC t2s), skipping OpenCC when nothing would change."""
    if text.isascii() or _traditional_chars().isdisjoint(text):
        return text
    return str(_t2s().convert(text))


def toneless(syllable: str) -> str:
    """Return a pinyin syllable without tone marks, ü written v (lǘ → lv)."""
    return syllable.translate(_TONELESS)


@cache
def _readings() -> tuple[dict[str, str], dict[str, tuple[str, ...]], dict[str, tuple[int, ...]]]:
    """Return (default reading per character, readings per phrase, phrase lengths per first two
    characters, longest first), toneless and lower case."""
    chars = {chr(code): toneless(readings.split(",")[0]) for code, readings in pinyin_dict.items()}
    phrases = {
        phrase: tuple(toneless(options[0]) for options in readings)
        for phrase, readings in phrases_dict.items()
        if 2 <= len(phrase) <= _LONGEST_PHRASE
    }
    lengths: dict[str, set[int]] = {}
    for phrase in phrases:
        lengths.setdefault(phrase[:2], set()).add(len(phrase))
    return chars, phrases, {start: tuple(sorted(ns, reverse=True)) for start, ns in lengths.items()}


def syllables(text: str) -> list[str]:
    """Return one pinyin syllable per Chinese character and each other character as it is.

    Phrases win over single characters (平安银行 → ping an yin hang), longest phrase first.
    """
    chars, phrases, lengths_by_start = _readings()
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        for length in lengths_by_start.get(text[i : i + 2], ()):
            reading = phrases.get(text[i : i + length]) if i + length <= n else None
            if reading is not None:
                out.extend(reading)
                i += length
                break
        else:
            out.append(chars.get(text[i], text[i]))
            i += 1
    return out


@cache
def _syllable_set() -> tuple[frozenset[str], frozenset[str]]:
    """Return every toneless pinyin syllable pypinyin knows, and every prefix of one."""
    known = frozenset(toneless(r) for readings in pinyin_dict.values() for r in readings.split(","))
    prefixes = frozenset(s[:i] for s in known for i in range(1, len(s) + 1))
    return known, prefixes


def splits_into_syllables(letters: str) -> bool:
    """Return whether lower-case letters are a run of pinyin syllables, the last maybe unfinished.

    "pinganyinhang" and "pinganyinh" (typed half-way) do; "payh" does not.
    """
    known, prefixes = _syllable_set()
    reachable = [True] + [False] * len(letters)
    for end in range(1, len(letters) + 1):
        reachable[end] = any(
            reachable[start] and letters[start:end] in known for start in range(max(0, end - 6), end)
        )
    tail_starts = range(max(0, len(letters) - 6), len(letters))
    return reachable[-1] or any(reachable[start] and letters[start:] in prefixes for start in tail_starts)


def pinyin_candidates(letters: str, *, prefixes: frozenset[str], suffixes: frozenset[str]) -> tuple[str, ...]:
    """Return pinyin query strings: the letters, and the letters without a leading place or a
    trailing legal form (shenzhenshiwuyefazhan → wuyefazhan), since legal names store their core.

    Every place that fits is tried (wuxi|xiandao vs wuxixian|dao). () when the letters are not pinyin.
    """
    if not splits_into_syllables(letters):
        return ()
    found = [letters]
    for length in range(4, min(len(letters) - 4, 24) + 1):
        if letters[:length] in prefixes and splits_into_syllables(letters[length:]):
            found.append(letters[length:])
    return tuple(dict.fromkeys(found + [_without_suffixes(candidate, suffixes) for candidate in found]))


def _without_suffixes(letters: str, suffixes: frozenset[str]) -> str:
    """Return the letters without trailing legal-form pinyin, longest first, repeatedly."""
    stripped = True
    while stripped:
        stripped = False
        for length in range(min(len(letters) - 4, 24), 3, -1):
            if letters[-length:] in suffixes:
                letters, stripped = letters[:-length], True
                break
    return letters
