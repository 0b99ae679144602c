"""Publish or roll back a big batch in a task rather than in the approver's web request.

A million-row batch takes over 30 s to publish and longer to roll back, and gunicorn kills a
worker that has not answered for 30 s: the transaction was lost, and the approver saw an error
page with no reason. So the request only checks what would refuse it, marks the batch and
queues the task. The batch page follows the task as it follows validation, and a task that
fails returns the batch to where it was, with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from ...models import Batch
from .processing import STRANDED_AFTER, BatchError, _audit
from .publishing import check_publishable, publish_batch
from .rollback import check_rollback, rollback_batch

# Up to this many rows a batch is published (or rolled back) within the request: a few seconds.
IN_REQUEST_ROWS = 50_000
_UNEXPECTED = "it failed ({error}) and nothing was changed. Try again; the worker's log has the details"


@dataclass(frozen=True)
class _Task:
    """Of one queued status: what the page says while its task runs, and what it undoes if it cannot."""

    note: str
    back: dict[str, Any]  # the batch's fields before the request
    refused: str
    audit: str


_TASKS: dict[str, _Task] = {
    Batch.Status.PUBLISHING: _Task(
        note="publishing: all rows become visible at once when it commits",
        back={"status": Batch.Status.READY, "approved_by": None, "approved_at": None},
        refused="Not published",
        audit="batch.publish_failed",
    ),
    Batch.Status.ROLLING_BACK: _Task(
        note="rolling back: every listing returns to its state before at once when it commits",
        back={"status": Batch.Status.PUBLISHED, "rolled_back_by": None},
        refused="Not rolled back",
        audit="batch.rollback_failed",
    ),
}


def request_publication(
    *, batch_id: int, approver: Any, skip_invalid: bool = False, ip_address: str | None = None
) -> Batch:
    """Publish a batch now, or mark a big one publishing and queue it; refuse at once what would fail."""
    if _rows(Batch.objects.get(pk=batch_id)) <= IN_REQUEST_ROWS:
        return publish_batch(
            batch_id=batch_id, approver=approver, skip_invalid=skip_invalid, ip_address=ip_address
        )
    from ... import tasks  # the tasks module imports the services: import it late

    with transaction.atomic():
        batch = _locked(batch_id)
        check_publishable(batch, approver, "", skip_invalid)
        batch.status, batch.approved_by, batch.approved_at = Batch.Status.PUBLISHING, approver, timezone.now()
        batch.skip_invalid = skip_invalid
        _queue(
            batch,
            "approved: waiting for a worker to publish it",
            "approved_by",
            "approved_at",
            "skip_invalid",
        )
        _audit("batch.publish_queued", batch, approver, ip_address, {"rows": _rows(batch)})
        tasks.publish_batch.delay_on_commit(batch.pk, ip_address)
    return batch


def publish_queued(*, batch_id: int, ip_address: str | None = None) -> Batch:
    """Publish a batch marked publishing (the task); once it is published, a second run does nothing."""

    def publish(batch: Batch) -> Batch:
        return publish_batch(
            batch_id=batch_id,
            approver=batch.approved_by,
            skip_invalid=batch.skip_invalid,
            ip_address=ip_address,
            queued=True,
        )

    return _run(batch_id, Batch.Status.PUBLISHING, publish, ip_address)


def request_rollback(*, batch_id: int, actor: Any, ip_address: str | None = None) -> Batch:
    """Roll a batch back now, or mark a big one rolling back and queue it; refuse at once what would fail."""
    if _touched(Batch.objects.get(pk=batch_id)) <= IN_REQUEST_ROWS:
        return rollback_batch(batch_id=batch_id, actor=actor, ip_address=ip_address)
    from ... import tasks

    with transaction.atomic():
        batch = _locked(batch_id)
        check_rollback(batch)
        batch.status, batch.rolled_back_by = Batch.Status.ROLLING_BACK, actor
        _queue(batch, "waiting for a worker to roll it back", "rolled_back_by")
        _audit("batch.rollback_queued", batch, actor, ip_address, {"listings": _touched(batch)})
        tasks.rollback_batch.delay_on_commit(batch.pk, ip_address)
    return batch


def rollback_queued(*, batch_id: int, ip_address: str | None = None) -> Batch:
    """Roll back a batch marked rolling back (the task); once it is rolled back, a second run does nothing."""

    def roll_back(batch: Batch) -> Batch:
        return rollback_batch(
            batch_id=batch_id, actor=batch.rolled_back_by, ip_address=ip_address, queued=True
        )

    return _run(batch_id, Batch.Status.ROLLING_BACK, roll_back, ip_address)


def stranded_actions(limit: int | None = 100) -> list[tuple[str, int]]:
    """Return (status, id) of batches queued long ago and still publishing or rolling back.

    Their task was lost (Redis went, or a worker was killed): queueing it again is safe, since
    a second run waits for the batch's lock and then finds it done.
    """
    queued = Batch.objects.filter(
        status__in=(Batch.Status.PUBLISHING, Batch.Status.ROLLING_BACK),
        queued_at__lt=timezone.now() - STRANDED_AFTER,
    )
    return list(queued.order_by("pk").values_list("status", "pk")[:limit])


def late_since(batch: Batch) -> dt.datetime | None:
    """Return when a batch was queued for publishing or rolling back, if its task is overdue."""
    if batch.status not in (Batch.Status.PUBLISHING, Batch.Status.ROLLING_BACK) or batch.queued_at is None:
        return None
    return batch.queued_at if batch.queued_at < timezone.now() - STRANDED_AFTER else None


def _rows(batch: Batch) -> int:
    return int(batch.counts.get("rows") or 0)


def _touched(batch: Batch) -> int:
    return sum(int(batch.counts.get(action) or 0) for action in ("add", "change", "remove"))


def _locked(batch_id: int) -> Batch:
    # No key update: the click does not wait for a publication's plan being prepared (planning.py).
    return Batch.objects.select_for_update(no_key=True).select_related("credit_list__agency").get(pk=batch_id)


def _queue(batch: Batch, note: str, *fields: str) -> None:
    batch.error, batch.progress, batch.progress_note, batch.queued_at = "", 0, note, timezone.now()
    batch.save(update_fields=["status", "error", "progress", "progress_note", "queued_at", *fields])


def _run(batch_id: int, status: str, action: Callable[[Batch], Batch], ip_address: str | None) -> Batch:
    """Run a queued batch's action; if it cannot finish, return the batch to its state before, saying why."""
    batch = Batch.objects.get(pk=batch_id)
    if batch.status != status:
        return batch
    task = _TASKS[status]
    Batch.objects.filter(pk=batch.pk).update(progress_note=task.note)
    try:
        return action(batch)
    except Exception as exc:
        _give_back(batch, status, task, exc, ip_address)
        if not isinstance(exc, BatchError):
            raise
    return Batch.objects.get(pk=batch_id)


def _give_back(batch: Batch, status: str, task: _Task, exc: Exception, ip_address: str | None) -> None:
    # Of an unexpected error, the class only: its text can quote rows (Celery logs the traceback).
    reason = str(exc) if isinstance(exc, BatchError) else _UNEXPECTED.format(error=type(exc).__name__)
    message = f"{task.refused}: {reason}"
    if Batch.objects.filter(pk=batch.pk, status=status).update(
        **task.back, error=message, progress=100, progress_note=task.refused.lower()
    ):  # no row: another run of the task already finished it
        _audit(task.audit, batch, "worker", ip_address, {"reason": message})
