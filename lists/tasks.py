"""Celery tasks: each takes IDs, calls one service and owns its retries."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError

from .services import cases, lifecycle, measures, sync


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def expire_listings() -> int:
    """End listings whose publication period has passed (safe to run any number of times)."""
    return lifecycle.expire_listings()


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def apply_measures(
    listing_ids: list[int] | None = None, reason: str = "listing_ended", feed_reason: str | None = None
) -> dict[str, int]:
    """Recompute restrictions from the current catalogue edition (one transaction: safe to re-run)."""
    result = measures.apply_measures(listing_ids=listing_ids, reason=reason, feed_reason=feed_reason)
    return {"lifted": result.lifted, "derived": result.derived, "changes": result.changes}


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def process_batch(batch_id: int) -> str:
    """Validate and diff one received batch (re-running restages it from the stored file)."""
    from .services.batches import process_batch as process

    return process(batch_id=batch_id).status


# No retry: without a plan the publication plans for itself.
@shared_task(acks_late=True)
def prepare_publication(batch_id: int) -> bool:
    """Plan a big batch's publication while it awaits approval (services/batches/planning.py)."""
    from .services.batches.planning import prepare_publication as prepare

    return prepare(batch_id)


# No retry: a failure returns the batch to the approver with the reason (services/batches/queued.py).
@shared_task(acks_late=True)
def publish_batch(batch_id: int, ip_address: str | None = None) -> str:
    """Publish a batch an approver queued (a second run does nothing)."""
    from .services.batches import publish_queued

    return publish_queued(batch_id=batch_id, ip_address=ip_address).status


@shared_task(acks_late=True)
def rollback_batch(batch_id: int, ip_address: str | None = None) -> str:
    """Roll back a batch an approver queued for it (a second run does nothing)."""
    from .services.batches import rollback_queued

    return rollback_queued(batch_id=batch_id, ip_address=ip_address).status


@shared_task(acks_late=True)
def requeue_stranded_batches() -> list[int]:
    """Queue again the batches whose validation, publication or rollback task was lost (each is idempotent)."""
    from .models import Batch
    from .services.batches import stranded_actions, stranded_batches

    batch_ids = stranded_batches()
    for batch_id in batch_ids:
        process_batch.delay(batch_id)
    for status, batch_id in stranded_actions():
        (publish_batch if status == Batch.Status.PUBLISHING else rollback_batch).delay(batch_id)
        batch_ids.append(batch_id)
    return batch_ids


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def apply_batch_measures(
    batch_id: int, reason: str = "batch_removed", pending_id: int | None = None
) -> dict[str, int]:
    """Index a big batch's new subjects' names, then record its restrictions (idempotent).

    Names first: until they are indexed a name search does not find the new subjects, while
    every reader of restrictions derives them until they are recorded (PendingRecompute).
    """
    from .models import Batch
    from .services.batches.publishing import ANALYZED, index_new_names, step, touched_listings
    from .services.batches.staging import analyze

    batch = Batch.objects.get(pk=batch_id)
    analyze(*ANALYZED)  # the publication left these tables with planner statistics of before
    with step(batch, "after commit: search names"):
        names = index_new_names(batch)
    with step(batch, "after commit: restrictions"):
        result = measures.apply_measures(listing_ids=touched_listings(batch), reason=reason)
        measures.finish_recompute(pending_id)
    return {"names": names, "lifted": result.lifted, "derived": result.derived}


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def escalate_overdue_cases() -> int:
    """Flag objections and repairs past their deadline and tell the agency admins (once each)."""
    return cases.escalate_overdue_cases()


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(sync.FeedUnavailable,),
    retry_backoff=30,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=3,
)
def sync_source(self, source_id: int) -> int | None:  # type: ignore[no-untyped-def]
    """Sync one source into a batch; retry an unreadable feed with backoff, then mark it unhealthy."""
    try:
        batch = sync.sync_source(source_id=source_id, final_attempt=self.request.retries >= self.max_retries)
    except SoftTimeLimitExceeded:
        sync.record_failure(source_id=source_id, error="the run exceeded its time limit", final=True)
        raise
    return batch.pk if batch else None


@shared_task(acks_late=True)
def sync_due_sources() -> list[int]:
    """Enqueue one sync_source task per due source (each on the "sync" queue with its time limits)."""
    return sync.sync_due_sources()


# Integrators (issue 6): exports and webhooks follow the change feed.
@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def refresh_exports(force: bool = False) -> int:
    """Export every list whose feed moved since its last export (all of them when forced, nightly)."""
    from .services import exports

    return len(exports.refresh_exports(force=force))


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def dispatch_webhooks() -> int:
    """Turn new changes touching watched subjects into webhook deliveries, then send what is due."""
    from .services import webhooks

    made = webhooks.dispatch_webhooks()
    webhooks.deliver_due_webhooks()
    return made


@shared_task(acks_late=True)
def deliver_webhook(delivery_id: int) -> bool:
    """Attempt one delivery now (a failure is rescheduled with backoff by the service, not by Celery)."""
    from .services import webhooks

    return webhooks.deliver(delivery_id=delivery_id)
