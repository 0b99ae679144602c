"""Background work that is late, for a monitor to alert an operator (GET /healthz/work).

The pages show each of these to whoever looks; a monitor polling this finds them when nobody
does. Each count uses the threshold its page uses: past it, the work's task was lost or its
worker, beat or source is down.
"""

from __future__ import annotations

from django.utils import timezone

from ..models import Source
from . import measures
from .batches import stranded_actions, stranded_batches


def late_work() -> dict[str, int]:
    """Return how many of each kind of background work are late (all 0 when all is well)."""
    return {
        # received over 10 minutes ago and never validated
        "batches_not_started": len(stranded_batches(limit=None)),
        # queued for publication or rollback over 10 minutes ago
        "batches_queued": len(stranded_actions(limit=None)),
        # restrictions of a big publication, rollback or catalogue edition pending over an hour
        "recomputes": sum(late for _, late in measures.pending_recomputes()),
        # enabled sync sources with no successful run within their staleness window
        "stale_sources": Source.objects.overdue(timezone.now()).count(),
    }
