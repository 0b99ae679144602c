"""Staff page for sources: health and freshness of each synced list, and "sync now"."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from agencies.models import Membership
from lists.models import Source
from lists.services import sync

from .views import require_role, visible_lists


@login_required
def source_list(request: HttpRequest) -> HttpResponse:
    sources = Source.objects.filter(credit_list__in=visible_lists(request.user)).select_related(
        "credit_list__agency", "trusted_by"
    )
    overdue = set(sources.overdue(timezone.now()).values_list("pk", flat=True))
    rows = [(source, source.pk in overdue) for source in sources]
    return render(request, "staff/sources.html", {"rows": rows})


@login_required
@require_POST
def source_sync(request: HttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(Source.objects.filter(credit_list__in=visible_lists(request.user)), pk=pk)
    require_role(request.user, source.credit_list, (Membership.Role.ADMIN,))
    sync.enqueue_sync(source_id=source.pk)
    messages.success(request, f"已排队 Sync of {source.credit_list.code} queued")
    return redirect("staff:source-list")
