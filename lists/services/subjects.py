"""Subjects and their searchable name variants."""

from __future__ import annotations

from collections.abc import Iterator

from ..models import Subject, SubjectName
from ..search.text import name_fields

NAME_COLUMNS = ("subject_id", "kind", "text", "normalized", "core", "bigrams", "pinyin", "initials", "latin")


def name_variants(
    *, name: str, aliases: list[str], former_names: list[str], name_en: str
) -> Iterator[tuple[str, str]]:
    """Yield (kind, text) for every distinct name of a subject."""
    seen: set[str] = set()
    variants = [(SubjectName.Kind.NAME, name)]
    variants += [(SubjectName.Kind.ALIAS, alias) for alias in aliases]
    variants += [(SubjectName.Kind.FORMER, former) for former in former_names]
    variants += [(SubjectName.Kind.ENGLISH, name_en)] if name_en else []
    for kind, text in variants:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            yield kind, text


def name_rows(subject_id: int, **names: object) -> list[tuple[object, ...]]:
    """Return SubjectName rows (in NAME_COLUMNS order) for a subject's names, for COPY."""
    rows = []
    for kind, text in name_variants(**names):  # type: ignore[arg-type]
        fields = name_fields(text, kind=kind)
        rows.append((subject_id, kind, text, *(fields[c] for c in NAME_COLUMNS[3:])))
    return rows


def reindex_subject_names(subject: Subject) -> None:
    """Replace the subject's name rows after its names changed."""
    subject.names.all().delete()
    rows = name_rows(
        subject.pk,
        name=subject.name,
        aliases=subject.aliases,
        former_names=subject.former_names,
        name_en=subject.name_en,
    )
    SubjectName.objects.bulk_create(
        [SubjectName(**dict(zip(NAME_COLUMNS, row, strict=True))) for row in rows]
    )
