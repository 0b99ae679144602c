"""Subjects (legal persons, natural persons, other organisations) and their searchable names."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Q

from .catalogue import SubjectType


def legacy_id_condition(column: str, value: str) -> str:
    """Return SQL true for subjects whose `column` (legacy_ids) holds `value`, served by the partial GIN index."""
    return f"({column} @> ARRAY[{value}]::varchar[] AND {column} <> '{{}}')"


class Subject(models.Model):
    """A legal person (by USCC), natural person (by hashed ID number) or other organisation."""

    subject_type = models.CharField(max_length=32, choices=SubjectType.choices)
    name = models.CharField(max_length=300)
    name_en = models.CharField(max_length=400, blank=True)
    aliases = ArrayField(models.CharField(max_length=300), default=list, blank=True, help_text="Short names")
    former_names = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    # Unique and indexed through Meta, not unique=/db_index=: those add a second, LIKE-only
    # (`_like`) index per column, paid on every subject a big batch inserts. Only region_code
    # is searched by prefix; its one pattern_ops index serves equality as well.
    uscc = models.CharField("统一社会信用代码", max_length=18, null=True, blank=True)  # noqa: DJ001 - unique
    org_code = models.CharField("组织机构代码", max_length=9, blank=True)
    legacy_ids = ArrayField(
        models.CharField(max_length=20),
        default=list,
        blank=True,
        help_text="15-digit registration/tax numbers",
    )
    # A personal ID number is never stored: only its keyed hash (for lookup) and a masked form.
    person_id_hash = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 - unique
    person_id_masked = models.CharField(max_length=18, blank=True)
    region_code = models.CharField(max_length=6, blank=True)
    is_synthetic = models.BooleanField(default=False, help_text="Demo data, not a real record")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(person_id_hash__isnull=True) | Q(uscc__isnull=True), name="subject_one_primary_id"
            ),
            # Partial: a subject has one of the two, and an index of a million NULLs costs a
            # million inserts for nothing (an equality lookup still uses it).
            models.UniqueConstraint(
                fields=["uscc"], condition=Q(uscc__isnull=False), name="subject_unique_uscc"
            ),
            models.UniqueConstraint(
                fields=["person_id_hash"],
                condition=Q(person_id_hash__isnull=False),
                name="subject_unique_person_id_hash",
            ),
        ]
        indexes = [
            # Only subjects that have a legacy number: GIN keeps an entry even for an empty
            # array, a cost paid by every new subject. Queries add the same condition.
            GinIndex(fields=["legacy_ids"], name="subject_legacy_ids_gin", condition=~Q(legacy_ids=[])),
            models.Index(fields=["org_code"], name="subject_org_code"),
            # No index on region_code: searches filter the subjects they found by region, and
            # an entry per subject cost every publication ~2 s a million.
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def identifier_display(self) -> str:
        """Return the identifier as it may be shown: USCC in full, a person's ID masked."""
        return self.uscc or self.person_id_masked or self.org_code or next(iter(self.legacy_ids), "")

    @property
    def is_person(self) -> bool:
        return self.subject_type in {SubjectType.NATURAL_PERSON, SubjectType.LEGAL_PERSON_OFFICERS}


class SubjectName(models.Model):
    """One name variant of a subject with its derived search columns (see lists.search.text)."""

    class Kind(models.TextChoices):
        NAME = "name", "Name"
        ALIAS = "alias", "Short name or alias"
        FORMER = "former", "Former name"
        ENGLISH = "en", "English name"

    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="names")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    text = models.CharField(max_length=400)
    normalized = models.CharField(max_length=400)
    core = models.CharField(max_length=400, blank=True)
    bigrams = models.TextField(blank=True)
    pinyin = models.CharField(max_length=600, blank=True)
    initials = models.CharField(max_length=200, blank=True)
    latin = models.CharField(max_length=400, blank=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("bigrams", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        indexes = [
            GinIndex(fields=["search_vector"], name="subjectname_bigram_gin"),
            models.Index(fields=["normalized"], name="subjectname_normalized"),
            models.Index(fields=["core"], name="subjectname_core"),
            models.Index(fields=["latin"], name="subjectname_latin"),
            # English names by their words in any order, last word as a prefix (lists.search.query).
            GinIndex(SearchVector("latin", config="simple"), name="subjectname_latin_words"),
            models.Index(fields=["pinyin"], name="subjectname_pinyin_prefix", opclasses=["text_pattern_ops"]),
            models.Index(fields=["initials"], name="subjectname_initials", opclasses=["text_pattern_ops"]),
        ]

    def __str__(self) -> str:
        return self.text
