"""Render a credit report as PDF with reportlab and its built-in Chinese CID font (no download)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from xml.sax.saxutils import escape

from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from lists.models import CreditReport, Restriction
from lists.services.profiles import SubjectProfile
from portal.templatetags.public_tags import bilingual, localized

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))
_BODY = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=13, wordWrap="CJK")
_H1 = ParagraphStyle("h1", parent=_BODY, fontSize=18, leading=24, spaceAfter=6)
_H2 = ParagraphStyle("h2", parent=_BODY, fontSize=12, leading=18, spaceBefore=10, spaceAfter=4)
_TABLE = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f2f3f5")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
)


def render_report_pdf(report: CreditReport, profile: SubjectProfile, *, verify_url: str) -> bytes:
    """Return the PDF bytes of an issued report."""
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm,
        title=f"{_('Credit report')} {report.number}", author="Xinyong",
    )  # fmt: skip
    doc.build(_story(report, profile, verify_url))
    return buffer.getvalue()


def _field(label: str, value: object) -> Paragraph:
    """Return "label: value" with the colon of the current language (full-width in Chinese)."""
    colon = ": " if (get_language() or "").startswith("en") else "："
    return _p(f"{label}{colon}{value}")


def _p(text: object, style: ParagraphStyle = _BODY) -> Paragraph:
    return Paragraph(escape(str(text if text not in (None, "") else "—")), style)


def _story(report: CreditReport, profile: SubjectProfile, verify_url: str) -> list[object]:
    subject = profile.subject
    issued = timezone.localtime(report.issued_at)
    story: list[object] = [
        _p(_("Credit report"), _H1),
        _field(_("Report number"), report.number),
        _field(_("Issued at"), f"{issued:%Y-%m-%d %H:%M} UTC+8"),
        Spacer(1, 4 * mm),
        _p(subject.name, _H2),
        _field(_("Subject type"), bilingual(subject.get_subject_type_display())),
        _field(_("Identifier"), subject.identifier_display or "—"),
    ]
    if subject.is_synthetic:
        story.append(_p(_("Synthetic demo record: not a real decision of any agency.")))
    story += [_p(_("Records in force"), _H2), _listings_table(profile)]
    story += [_p(_("Punishment measures in force"), _H2), _measures_table(profile.punishments)]
    story += [_p(_("Incentive measures granted"), _H2), _measures_table(profile.incentives)]
    story += [
        Spacer(1, 6 * mm),
        _field(_("Content SHA-256"), report.content_sha256),
        _field(_("Verify this report at"), verify_url),
        _p(
            _(
                "This report lists the records in force on the date of issue. Expired and repaired records are not shown."
            )
        ),
    ]
    return story


def _listings_table(profile: SubjectProfile) -> object:
    if not profile.listings:
        return _p(_("No records in force."))
    header = [
        _("List"),
        _("Agency"),
        _("Document number"),
        _("Reason"),
        _("Decided"),
        _("Expires"),
        _("Status"),
    ]
    rows = [
        [
            localized(listing.credit_list), localized(listing.credit_list.agency), listing.reference, listing.reason,
            listing.decided_on, listing.expires_on or _("Until removed"), bilingual(listing.get_status_display()),
        ]
        for listing in profile.listings
    ]  # fmt: skip
    return _table(header, rows, [30, 26, 30, 37, 21, 21, 15])


def _measures_table(restrictions: list[Restriction]) -> object:
    if not restrictions:
        return _p(_("None."))
    header = [_("Measure"), _("Legal basis"), _("Implementing agency"), _("Because of"), _("Until")]
    rows = [
        [
            localized(r.measure), "；".join(r.measure.legal_basis), r.measure.implementing_agency,
            f"{localized(r.listing.credit_list)} {r.listing.reference}", r.ends_on or _("While listed"),
        ]
        for r in restrictions
    ]  # fmt: skip
    return _table(header, rows, [40, 45, 30, 45, 20])


def _table(header: list[str], rows: Sequence[Sequence[object]], widths_mm: list[int]) -> Table:
    data = [[_p(cell) for cell in header]] + [[_p(cell) for cell in row] for row in rows]
    table = Table(data, colWidths=[w * mm for w in widths_mm], repeatRows=1)
    table.setStyle(_TABLE)
    return table
