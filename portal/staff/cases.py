"""Staff pages for objections and repair applications: queue, case, evidence, decision.

A case is visible only to staff of the agency handling it (and operators); anyone else gets a
404, so case numbers cannot be probed. Deciding needs the approver or admin role.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from agencies.models import Membership
from agencies.roles import agencies_for, has_role
from lists.models import Case, Evidence
from lists.services.cases import (
    CORRECTABLE_FIELDS,
    CaseRefused,
    decide_objection,
    decide_repair,
    start_review,
)
from lists.services.evidence import record_evidence_download

from ..cases.views import evidence_response
from ..security import client_ip

DECIDER_ROLES = (Membership.Role.APPROVER, Membership.Role.ADMIN)


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(label="决定 Decision")
    reason = forms.CharField(label="理由 Reason", widget=forms.Textarea(attrs={"rows": 4}))
    corrected_value = forms.CharField(
        label="更正后的内容 Corrected value",
        required=False,
        help_text="Only for 'correct': the new value of the item objected to. Empty: revoke the record.",
    )

    def __init__(self, *args: Any, case: Case, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        allowed = Case.OBJECTION_DECISIONS if case.kind == Case.Kind.OBJECTION else Case.REPAIR_DECISIONS
        decision = cast(forms.ChoiceField, self.fields["decision"])
        decision.choices = [(d.value, d.label) for d in allowed]
        if case.kind != Case.Kind.OBJECTION or case.field not in CORRECTABLE_FIELDS:
            del self.fields["corrected_value"]


def _visible_cases(request: HttpRequest) -> Any:
    return Case.objects.for_agencies(agencies_for(request.user)).select_related(
        "agency", "listing__credit_list", "listing__subject", "decided_by"
    )


def _case_for_staff(request: HttpRequest, pk: int) -> Case:
    return get_object_or_404(_visible_cases(request), pk=pk)


@login_required
def case_list(request: HttpRequest) -> HttpResponse:
    """Show the agency's queue: open cases by deadline, overdue ones first and highlighted."""
    state = request.GET.get("state", "open")
    cases = _visible_cases(request)
    if request.GET.get("agency"):
        cases = cases.filter(agency__code=request.GET["agency"])
    cases = cases.filter(status=Case.Status.DECIDED) if state == "decided" else cases.open()
    context = {
        "cases": cases.order_by("due_on", "pk")[:500],
        "state": state,
        "agencies": agencies_for(request.user),
        "today": timezone.localdate(),
    }
    return render(request, "staff/cases/case_list.html", context)


@never_cache
@login_required
def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """Show one case with its record, documents, history and the decision form."""
    case = _case_for_staff(request, pk)
    return _render_detail(request, case, DecisionForm(case=case))


def _render_detail(request: HttpRequest, case: Case, form: DecisionForm, status: int = 200) -> HttpResponse:
    context = {
        "case": case,
        "listing": case.listing,
        "evidence": case.evidence.all(),
        "events": case.events.select_related("actor"),
        "form": form,
        "can_decide": case.is_open and has_role(request.user, case.agency, *DECIDER_ROLES),
        "is_overdue": case.is_overdue(timezone.localdate()),
    }
    return render(request, "staff/cases/case_detail.html", context, status=status)


@require_POST
@login_required
def case_review(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark a filed case as under review."""
    case = _case_for_staff(request, pk)
    start_review(case=case, actor=request.user, ip_address=client_ip(request))
    return redirect("staff:case-detail", pk=case.pk)


@require_POST
@login_required
def case_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Record the agency's decision on a case, with its reason."""
    case = _case_for_staff(request, pk)
    if not has_role(request.user, case.agency, *DECIDER_ROLES):
        raise PermissionDenied("Only the agency's approvers and admins decide cases.")
    form = DecisionForm(request.POST, case=case)
    if form.is_valid():
        try:
            _decide(request, case, form.cleaned_data)
        except (CaseRefused, ValidationError) as refusal:
            form.add_error(None, "; ".join(getattr(refusal, "messages", [str(refusal)])))
        else:
            return redirect("staff:case-detail", pk=case.pk)
    return _render_detail(request, case, form, status=400)


def _decide(request: HttpRequest, case: Case, data: dict[str, Any]) -> None:
    common = {"case": case, "decision": data["decision"], "reason": data["reason"], "actor": request.user}
    if case.kind == Case.Kind.REPAIR:
        decide_repair(**common, ip_address=client_ip(request))
        return
    value = data.get("corrected_value")
    corrections = {case.field: value} if data["decision"] == Case.Decision.CORRECT and value else None
    decide_objection(**common, ip_address=client_ip(request), corrections=corrections)


@never_cache
@login_required
def case_evidence(request: HttpRequest, pk: int, evidence_id: int) -> FileResponse:
    """Send one document of a case to staff of the handling agency."""
    case = _case_for_staff(request, pk)
    evidence = get_object_or_404(Evidence, case=case, pk=evidence_id)
    record_evidence_download(evidence=evidence, actor=request.user, ip_address=client_ip(request))
    return evidence_response(evidence)
