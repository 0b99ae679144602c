"""Staff pages for uploads: sign in, dashboard, upload, batch progress and diff, publish, roll back.

Staff see only their agencies' lists and batches (anything else is a 404, so ids cannot be
probed); acting needs the right role in the list's agency (else 403). Operators see all.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from agencies.models import Membership
from agencies.roles import agencies_for, has_role, is_operator
from agencies.services import record_event
from lists.importers.schema import CORE_FIELDS
from lists.models import Batch, BatchRow, CreditList, PendingRecompute
from lists.services import batches, measures
from lists.services.batches import BatchError

from ..security import client_ip
from .forms import MappingForm, PublishForm, RejectForm, RollbackForm, UploadForm

UPLOAD_ROLES = (Membership.Role.UPLOADER, Membership.Role.ADMIN)
APPROVE_ROLES = (Membership.Role.APPROVER, Membership.Role.ADMIN)
BUSY = (Batch.Status.RECEIVED, Batch.Status.PROCESSING, Batch.Status.PUBLISHING, Batch.Status.ROLLING_BACK)
REMAPPABLE = (Batch.Status.NEEDS_MAPPING, Batch.Status.READY, Batch.Status.FAILED)
_DONE_OR_QUEUED: dict[str, str] = {
    Batch.Status.PUBLISHED: "Published.",
    Batch.Status.PUBLISHING: "Approved. A big batch is published in the background: this page follows it.",
    Batch.Status.ROLLED_BACK: "Rolled back.",
    Batch.Status.ROLLING_BACK: "A big batch is rolled back in the background: this page follows it.",
}
ROW_FILTERS = {
    "add": {"action": "add"},
    "change": {"action": "change"},
    "remove": {"action": "remove"},
    "unchanged": {"action": "unchanged"},
    "invalid": {"outcome": "invalid"},
    "warning": {"outcome": "warning"},
}
FIRST_PROBLEMS = 20
ROWS_PER_PAGE = 50
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class LoginView(auth_views.LoginView):
    template_name = "staff/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        record_event(action="staff.login", actor=form.get_user(), ip_address=client_ip(self.request))
        return response


class LogoutView(auth_views.LogoutView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            record_event(action="staff.logout", actor=request.user, ip_address=client_ip(request))
        return super().post(request, *args, **kwargs)


def visible_lists(user: Any) -> QuerySet[CreditList]:
    """Return the lists the user may see: those of their agencies."""
    return CreditList.objects.for_agencies(agencies_for(user)).select_related("agency")


def visible_batch(request: HttpRequest, pk: int) -> Batch:
    """Return a batch of the user's agencies, or 404."""
    queryset = Batch.objects.for_lists(visible_lists(request.user)).select_related(
        "credit_list__agency", "uploaded_by", "approved_by", "rolled_back_by"
    )
    return get_object_or_404(queryset, pk=pk)


def require_role(user: Any, batch_or_list: Batch | CreditList, roles: tuple[str, ...]) -> None:
    """Raise 403 unless the user holds one of the roles in the list's agency."""
    credit_list = batch_or_list.credit_list if isinstance(batch_or_list, Batch) else batch_or_list
    if not has_role(user, credit_list.agency, *roles):
        raise PermissionDenied("your role in this agency does not allow this")


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    lists = visible_lists(request.user)
    recent = Batch.objects.for_lists(lists).select_related("credit_list", "uploaded_by")[:25]
    # Recomputes span every list (a catalogue edition): platform operators' business.
    pending = measures.pending_recomputes() if is_operator(request.user) else []
    return render(request, "staff/dashboard.html", {"lists": lists, "batches": recent, "pending": pending})


@login_required
def upload(request: HttpRequest) -> HttpResponse:
    lists = visible_lists(request.user)
    form = UploadForm(request.POST or None, request.FILES or None, lists=lists, initial=request.GET.dict())
    if request.method == "POST" and form.is_valid():
        credit_list = form.cleaned_data["credit_list"]
        require_role(request.user, credit_list, UPLOAD_ROLES)
        try:
            batch = batches.receive_batch(
                credit_list=credit_list,
                payload=form.cleaned_data["file"].read(),
                filename=form.cleaned_data["file"].name,
                mode=form.cleaned_data["mode"],
                origin=Batch.Origin.UPLOAD,
                actor=request.user,
                file_format=form.cleaned_data["file_format"] or None,
                ip_address=client_ip(request),
            )
        except BatchError as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("staff:batch-detail", pk=batch.pk)
    return render(request, "staff/upload.html", {"form": form})


@never_cache
@login_required
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = visible_batch(request, pk)
    problems = batch.rows.exclude(outcome=BatchRow.Outcome.VALID).order_by("line_no")[:FIRST_PROBLEMS]
    user = request.user
    context = {
        "batch": batch,
        "busy": batch.status in BUSY,
        "late_since": batches.late_since(batch),
        "problems": problems,
        "mapping_form": _mapping_form(batch) if batch.status in REMAPPABLE else None,
        "can_approve": has_role(user, batch.credit_list.agency, *APPROVE_ROLES)
        and user.pk != batch.uploaded_by_id,
        "can_upload": has_role(user, batch.credit_list.agency, *UPLOAD_ROLES),
        "publish_form": PublishForm(),
        "reject_form": RejectForm(),
        "filters": list(ROW_FILTERS),
        # A big batch's restrictions are recorded by a task after it commits: say so until done.
        "measures_pending_since": PendingRecompute.objects.filter(batch=batch)
        .values_list("created_at", flat=True)
        .first(),
    }
    return render(request, "staff/batch_detail.html", context)


def _mapping_form(batch: Batch, data: Any = None) -> MappingForm | None:
    columns = batch.header_mapping.get("columns") or []
    if not columns:
        return None
    return MappingForm(data, columns=columns, schema=batches.list_schema(batch.credit_list))


@never_cache
@login_required
def batch_status(request: HttpRequest, pk: int) -> JsonResponse:
    batch = visible_batch(request, pk)
    return JsonResponse(
        {
            "status": batch.status,
            "status_display": batch.get_status_display(),
            "progress": batch.progress,
            "note": batch.progress_note,
            "counts": batch.counts,
            "error": batch.error,
            "done": batch.status not in BUSY,
        }
    )


@login_required
def batch_rows(request: HttpRequest, pk: int) -> HttpResponse:
    batch = visible_batch(request, pk)
    show = request.GET.get("show", "change")
    rows = batch.rows.filter(**ROW_FILTERS.get(show, ROW_FILTERS["change"])).order_by("line_no")
    page = Paginator(rows, ROWS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "batch": batch,
        "page": page,
        "show": show,
        "filters": list(ROW_FILTERS),
        "last_line": _last_line(batch),
    }
    return render(request, "staff/batch_rows.html", context)


def _last_line(batch: Batch) -> int:
    return int((batch.counts or {}).get("last_line", 0))


def safe_cell(value: object) -> str:
    """Return a CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
def batch_problems(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    batch = visible_batch(request, pk)
    record_event(
        action="batch.download_problems", actor=request.user, target=batch, ip_address=client_ip(request)
    )
    rows = batch.rows.exclude(outcome=BatchRow.Outcome.VALID).order_by("line_no")
    response = StreamingHttpResponse(_problem_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}-problems.csv"'
    return response


def _problem_lines(rows: QuerySet[BatchRow]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(["line", "outcome", "errors", "warnings", "name", "identifier", "raw"])
    for row in rows.iterator(chunk_size=2000):
        cells = [
            row.line_no, row.outcome, "; ".join(row.errors), "; ".join(row.warnings),
            row.data.get("name", ""), row.data.get("identifier", ""),
            " | ".join(f"{k}={v}" for k, v in row.raw.items()),
        ]  # fmt: skip
        yield writer.writerow([safe_cell(c) for c in cells])


@require_POST
@login_required
def batch_mapping(request: HttpRequest, pk: int) -> HttpResponse:
    batch = visible_batch(request, pk)
    require_role(request.user, batch, (*UPLOAD_ROLES, Membership.Role.APPROVER))
    form = _mapping_form(batch, request.POST)
    if form is None or not form.is_valid():
        messages.error(request, "The column mapping could not be read; try again.")
        return redirect("staff:batch-detail", pk=batch.pk)
    try:
        batches.confirm_mapping(
            batch_id=batch.pk, overrides=form.overrides(), actor=request.user, ip_address=client_ip(request)
        )
    except BatchError as exc:
        messages.error(request, str(exc))
    return redirect("staff:batch-detail", pk=batch.pk)


@require_POST
@login_required
def batch_publish(request: HttpRequest, pk: int) -> HttpResponse:
    batch = visible_batch(request, pk)
    require_role(request.user, batch, APPROVE_ROLES)
    form = PublishForm(request.POST)
    form.is_valid()
    try:
        batch = batches.request_publication(
            batch_id=batch.pk,
            approver=request.user,
            skip_invalid=form.cleaned_data.get("skip_invalid", False),
            ip_address=client_ip(request),
        )
    except BatchError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _DONE_OR_QUEUED[batch.status])
    return redirect("staff:batch-detail", pk=batch.pk)


@require_POST
@login_required
def batch_reject(request: HttpRequest, pk: int) -> HttpResponse:
    batch = visible_batch(request, pk)
    require_role(request.user, batch, APPROVE_ROLES)
    form = RejectForm(request.POST)
    form.is_valid()
    try:
        batches.reject_batch(
            batch_id=batch.pk,
            actor=request.user,
            reason=form.cleaned_data.get("reason", ""),
            ip_address=client_ip(request),
        )
    except BatchError as exc:
        messages.error(request, str(exc))
    return redirect("staff:batch-detail", pk=batch.pk)


@login_required
def batch_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    batch = visible_batch(request, pk)
    require_role(request.user, batch, APPROVE_ROLES)
    form = RollbackForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch = batches.request_rollback(
                batch_id=batch.pk, actor=request.user, ip_address=client_ip(request)
            )
        except BatchError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _DONE_OR_QUEUED[batch.status])
            return redirect("staff:batch-detail", pk=batch.pk)
    return render(request, "staff/batch_rollback.html", {"batch": batch, "form": form})


@login_required
def list_template(request: HttpRequest, code: str) -> HttpResponse:
    credit_list = get_object_or_404(visible_lists(request.user), code=code)
    schema = batches.list_schema(credit_list)
    fields = [f for f in schema.fields() if f.name != "action"] + [
        f for f in CORE_FIELDS if f.name == "action"
    ]
    # "名称(name)": the header mapper reads both the label and the bracketed canonical name.
    header = [f"{f.label}({f.name})" if f.label else f.name for f in fields]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{credit_list.code}-template.csv"'
    response.write("\ufeff")
    csv.writer(response).writerow(header)
    return response
