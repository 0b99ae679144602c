"""Public pages: file an objection or a repair application, then follow it with an access code.

No account is needed. Knowing a case number and its access code grants this browser session
access to that case; nothing else does.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from lists.models import Case, Evidence, Listing
from lists.services.cases import CaseRefused, FiledCase, file_objection, file_repair_request, repair_refusal
from lists.services.evidence import add_evidence

from ..security import client_ip
from .forms import AddEvidenceForm, ObjectionForm, RepairForm, TrackForm

SESSION_ACCESS = "case_access"
SESSION_FILED = "case_filed"
# Wrong codes allowed per client address, and per case number (against address rotation).
TRACK_LIMIT_PER_IP = 10
TRACK_LIMIT_PER_CASE = 20
TRACK_WINDOW_SECONDS = 15 * 60
# Cases filed per client address: each one mails an address the filer typed in.
FILING_LIMIT_PER_IP = 20
FILING_WINDOW_SECONDS = 60 * 60
FILING_LIMIT_ERROR = (
    "提交过于频繁，请稍后再试 Too many applications from this address; please try again later."
)
GENERIC_TRACK_ERROR = "案件编号或查询码不正确 The case number or access code is not correct."


def _public_listing(listing_id: int) -> Listing:
    listings = Listing.objects.in_force().filter(credit_list__is_public=True)
    return get_object_or_404(listings.select_related("subject", "credit_list__agency"), pk=listing_id)


def objection_new(request: HttpRequest, listing_id: int) -> HttpResponse:
    """Show and accept the objection form for one published listing."""
    listing = _public_listing(listing_id)
    form = ObjectionForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            _check_filing_limit(request)
            filed = file_objection(
                listing=listing,
                applicant_name=data["applicant_name"],
                applicant_email=data["applicant_email"],
                field=data["field"],
                grounds=data["grounds"],
            )
        except CaseRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            return _filed(request, filed, data["evidence"])
    return render(request, "cases/objection_form.html", {"listing": listing, "form": form})


def repair_new(request: HttpRequest, listing_id: int) -> HttpResponse:
    """Show and accept the repair application for one published listing, if it may be repaired."""
    listing = _public_listing(listing_id)
    refusal = repair_refusal(listing)
    form = RepairForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and not refusal and form.is_valid():
        data = form.cleaned_data
        try:
            _check_filing_limit(request)
            filed = file_repair_request(
                listing=listing,
                applicant_name=data["applicant_name"],
                applicant_email=data["applicant_email"],
                statement=data["statement"],
            )
        except CaseRefused as exc:
            form.add_error(None, str(exc))
        else:
            return _filed(request, filed, data["evidence"])
    context = {"listing": listing, "form": form, "refusal": refusal}
    return render(request, "cases/repair_form.html", context)


def _check_filing_limit(request: HttpRequest) -> None:
    key = f"cases:file:ip:{client_ip(request)}"
    if cache.get(key, 0) >= FILING_LIMIT_PER_IP:
        raise CaseRefused(FILING_LIMIT_ERROR)
    cache.add(key, 0, FILING_WINDOW_SECONDS)
    cache.incr(key)


def _filed(request: HttpRequest, filed: FiledCase, uploads: list[Any]) -> HttpResponse:
    # The files were checked by the form; a failure here leaves a case the applicant can top up.
    for upload in uploads:
        add_evidence(case=filed.case, upload=upload)
    _grant_access(request, filed.case)
    request.session[SESSION_FILED] = {"number": filed.case.number, "code": filed.access_code}
    return redirect("cases:filed")


@never_cache
def filed(request: HttpRequest) -> HttpResponse:
    """Show the new case number and access code, once."""
    shown = request.session.pop(SESSION_FILED, None)
    if shown is None:
        return redirect("cases:track")
    case = get_object_or_404(Case.objects.select_related("agency"), number=shown["number"])
    return render(request, "cases/filed.html", {"case": case, "access_code": shown["code"]})


def track(request: HttpRequest) -> HttpResponse:
    """Open a case with its number and access code; wrong codes are counted and limited."""
    form = TrackForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        return render(request, "cases/track.html", {"form": form})
    number = form.cleaned_data["number"]
    keys = [f"cases:track:ip:{client_ip(request)}", f"cases:track:case:{number}"]
    if _is_limited(keys):
        form.add_error(None, "尝试次数过多，请稍后再试 Too many attempts; please try again later.")
        return render(request, "cases/track.html", {"form": form}, status=429)
    case = Case.objects.filter(number=number).first()
    if case is None or not case.check_access_code(form.cleaned_data["access_code"]):
        _count_failure(keys)
        form.add_error(None, GENERIC_TRACK_ERROR)
        return render(request, "cases/track.html", {"form": form}, status=403)
    _grant_access(request, case)
    return redirect("cases:case-detail", number=case.number)


def _is_limited(keys: list[str]) -> bool:
    counts = cache.get_many(keys)
    limits = (TRACK_LIMIT_PER_IP, TRACK_LIMIT_PER_CASE)
    return any(counts.get(key, 0) >= limit for key, limit in zip(keys, limits, strict=True))


def _count_failure(keys: list[str]) -> None:
    for key in keys:
        cache.add(key, 0, TRACK_WINDOW_SECONDS)
        cache.incr(key)


def _grant_access(request: HttpRequest, case: Case) -> None:
    granted = set(request.session.get(SESSION_ACCESS, []))
    granted.add(case.pk)
    request.session[SESSION_ACCESS] = sorted(granted)


def _applicant_case(request: HttpRequest, number: str) -> Case:
    """Return the case if this session opened it with its access code, else 404."""
    granted = request.session.get(SESSION_ACCESS, [])
    cases = Case.objects.filter(pk__in=granted).select_related("agency", "listing__credit_list")
    return get_object_or_404(cases, number=number)


@never_cache
def case_detail(request: HttpRequest, number: str) -> HttpResponse:
    """Show the applicant their case: status, deadline, decision, documents."""
    granted = request.session.get(SESSION_ACCESS, [])
    case = Case.objects.filter(pk__in=granted, number=number).select_related("agency", "listing").first()
    if case is None:
        return redirect("cases:track")
    context = {"case": case, "form": AddEvidenceForm(), "events": case.events.all()}
    return render(request, "cases/case_detail.html", {**context, "evidence": case.evidence.all()})


@require_POST
def case_evidence_add(request: HttpRequest, number: str) -> HttpResponse:
    """Attach further documents to an open case."""
    case = _applicant_case(request, number)
    form = AddEvidenceForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            for upload in form.cleaned_data["evidence"]:
                add_evidence(case=case, upload=upload)
        except CaseRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            return redirect("cases:case-detail", number=case.number)
    context = {"case": case, "form": form, "events": case.events.all(), "evidence": case.evidence.all()}
    return render(request, "cases/case_detail.html", context, status=400)


@never_cache
def case_evidence(request: HttpRequest, number: str, evidence_id: int) -> FileResponse:
    """Send one of the case's documents to the applicant who opened the case."""
    case = _applicant_case(request, number)
    return evidence_response(get_object_or_404(Evidence, case=case, pk=evidence_id))


def evidence_response(evidence: Evidence) -> FileResponse:
    """Return the document as a download that the browser will not render in the site's origin."""
    response = FileResponse(
        evidence.file.open("rb"),
        as_attachment=True,
        filename=evidence.original_name,
        content_type=evidence.content_type,
    )
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, no-store"
    return response
