"""Evidence for objections and repair applications: checked by content, stored privately, audited."""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.text import get_valid_filename

from agencies.services import record_event

from ..models import Case, CaseEvent, Evidence
from .cases import CaseRefused

EVIDENCE_MAX_BYTES = 10 * 1024 * 1024
EVIDENCE_MAX_FILES = 10
# Only formats a reviewer can open safely; identified by their first bytes, never by name or header.
_MAGIC = {
    b"%PDF-": ("application/pdf", ".pdf"),
    b"\xff\xd8\xff": ("image/jpeg", ".jpg"),
    b"\x89PNG\r\n\x1a\n": ("image/png", ".png"),
}


def sniff_evidence_type(head: bytes) -> tuple[str, str] | None:
    """Return (content type, suffix) for a PDF, JPEG or PNG by its first bytes, else None."""
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return None


def check_evidence(upload: UploadedFile) -> tuple[str, str]:
    """Return the upload's (content type, suffix), or refuse it for its size or type."""
    if upload.size is None or upload.size > EVIDENCE_MAX_BYTES:
        raise CaseRefused(f"{upload.name}: files may be at most {EVIDENCE_MAX_BYTES // (1024 * 1024)} MB")
    if upload.size == 0:
        raise CaseRefused(f"{upload.name}: the file is empty")
    upload.seek(0)
    kind = sniff_evidence_type(upload.read(16))
    upload.seek(0)
    if kind is None:
        raise CaseRefused(f"{upload.name}: only PDF, JPEG and PNG files are accepted")
    return kind


def add_evidence(*, case: Case, upload: UploadedFile, uploaded_by: Any = None) -> Evidence:
    """Store one checked evidence file privately and attach it to the case."""
    if case.evidence.count() >= EVIDENCE_MAX_FILES:
        raise CaseRefused(f"a case may hold at most {EVIDENCE_MAX_FILES} files")
    if not case.is_open:
        raise CaseRefused("documents can no longer be added: the case has been decided")
    content_type, suffix = check_evidence(upload)
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    original = _sanitise_name(upload.name or "document", suffix)
    user = uploaded_by if getattr(uploaded_by, "is_authenticated", False) else None
    with transaction.atomic():
        evidence = Evidence(
            case=case,
            original_name=original,
            content_type=content_type,
            size=upload.size or 0,
            sha256=digest.hexdigest(),
            uploaded_by=user,
        )
        evidence.file.save(f"document{suffix}", upload, save=False)
        evidence.save()
        CaseEvent.objects.create(case=case, action="evidence_added", actor=user, note=original)
    return evidence


def _sanitise_name(name: str, suffix: str) -> str:
    # Drop any path, control and shell characters; keep CJK letters so the name stays readable.
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    cleaned = get_valid_filename("".join(c for c in stem if c.isprintable())[:100]) if stem.strip() else ""
    return f"{cleaned or 'document'}{suffix}"


def record_evidence_download(*, evidence: Evidence, actor: Any, ip_address: str | None = None) -> None:
    """Record that a staff member opened a case document: evidence is personal data."""
    record_event(
        action="case.evidence.downloaded",
        actor=actor,
        target=evidence,
        agency=evidence.case.agency,
        detail={"number": evidence.case.number, "name": evidence.original_name},
        ip_address=ip_address,
    )
