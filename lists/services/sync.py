"""Sync lists from agency-owned feeds: fetch, then hand the payload to the upload pipeline.

A run never writes published data itself: it becomes a batch (receive → process) and is
published only by the batch pipeline, either by a person or, for a trusted source, on its own.
Whatever goes wrong (timeouts, 5xx, garbage pages, a snapshot that suddenly shrinks), the
published listings stay as they were and the source's health says what happened.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.utils import timezone

from ..models import Batch, BatchRow, CreditList, Listing, Source
from ..models.sync import schedule_interval
from .fetch import Feed, FeedUnavailable, SyncFailed, fetch_feed
from .locks import SYNC_LOCK_CLASS, session_lock

log = logging.getLogger(__name__)

# Advisory-lock class for "a run of source N is in progress" (the second key is the source id).


def sync_source(*, source_id: int, final_attempt: bool = True) -> Batch | None:
    """Fetch one source and turn it into a batch; publish it if the source is trusted.

    Return the batch, or None when another run holds the source or there was nothing new.
    Raise FeedUnavailable (worth a retry) or SyncFailed after recording the failure on the
    source; `final_attempt` decides whether it shows as failing (retrying) or unhealthy.
    """
    source = Source.objects.select_related("credit_list", "trusted_by").get(pk=source_id)
    with session_lock(SYNC_LOCK_CLASS, source.pk, wait=False) as acquired:
        if not acquired:
            log.info("sync of %s skipped: another run holds it", source.credit_list.code)
            return None
        started = timezone.now()
        Source.objects.filter(pk=source.pk).update(last_attempt_at=started)
        try:
            feed = fetch_feed(source, started=started)
            return _ingest(source, feed)
        except FeedUnavailable as exc:
            record_failure(source_id=source.pk, error=str(exc), final=final_attempt)
            raise
        except SyncFailed as exc:
            record_failure(source_id=source.pk, error=str(exc), final=True)
            raise
        except Exception as exc:
            # A crash in the pipeline must not leave the source looking healthy.
            record_failure(source_id=source.pk, error=f"{type(exc).__name__}: {exc}", final=final_attempt)
            raise


def sync_due_sources(*, now: dt.datetime | None = None) -> list[int]:
    """Enqueue one sync task per due source on the "sync" queue; return their ids."""
    now = now or timezone.now()
    with transaction.atomic():
        due = Source.objects.due(now).select_for_update(skip_locked=True)
        sources = list(due.only("pk", "timeout_seconds", "max_pages"))
        Source.objects.filter(pk__in=[s.pk for s in sources]).update(
            next_sync_at=Value(now) + schedule_interval("schedule_minutes")
        )
        for source in sources:
            enqueue_sync(source_id=source.pk)
    return [s.pk for s in sources]


def enqueue_sync(*, source_id: int) -> None:
    """Run one source now, on the "sync" queue with its time limits, once the transaction commits."""
    from ..tasks import sync_source as sync_task  # tasks import services: import at call time

    soft, hard = time_limits(Source.objects.get(pk=source_id))
    transaction.on_commit(
        lambda: sync_task.apply_async(args=[source_id], queue="sync", soft_time_limit=soft, time_limit=hard)
    )


def time_limits(source: Source) -> tuple[int, int]:
    """Return the soft and hard time limits of one run: its pages' timeouts plus processing time."""
    fetch = source.timeout_seconds * min(source.max_pages, 20)
    soft = fetch + int(getattr(settings, "SYNC_PROCESS_SECONDS", 900))
    return soft, soft + 60


def record_failure(*, source_id: int, error: str, final: bool) -> None:
    """Count a failed run; the source is unhealthy once no retry is left."""
    health = Source.Health.UNHEALTHY if final else Source.Health.FAILING
    log.warning("sync of source %s failed (%s): %s", source_id, health, error)
    Source.objects.filter(pk=source_id).update(
        health=health, consecutive_failures=F("consecutive_failures") + 1, last_error=error[:4000]
    )


def trust_source(*, source_id: int, user: Any) -> Source:
    """Let the source's runs publish without a second person, recording who decided and when."""
    Source.objects.filter(pk=source_id).update(is_trusted=True, trusted_by=user, trusted_at=timezone.now())
    return Source.objects.get(pk=source_id)


def distrust_source(*, source_id: int) -> Source:
    """Make the source's runs wait for approval again."""
    Source.objects.filter(pk=source_id).update(is_trusted=False, trusted_by=None, trusted_at=None)
    return Source.objects.get(pk=source_id)


def source_status(*, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Return each source's health and freshness, for staff dashboards."""
    now = now or timezone.now()
    overdue = set(Source.objects.overdue(now).values_list("pk", flat=True))
    return [
        {"source": s, "list": s.credit_list, "is_stale": s.pk in overdue, "health": s.health}
        for s in Source.objects.select_related("credit_list", "trusted_by")
    ]


# The demo sources `make run` creates: (list, mode, trusted). ADMIN_LICENCE gets no seed_demo
# listings, so its snapshot shows plain adds and removes instead of tripping the safety stop.
DEMO_SOURCES = (
    ("ADMIN_LICENCE", Source.Mode.SNAPSHOT, True),
    ("TAX_MAJOR_VIOLATION", Source.Mode.INCREMENTAL, False),
)


def create_demo_sources(*, base_url: str, trusted_by: Any) -> list[Source]:
    """Create or update the demo sources pointing at the portal's own demo feed."""
    sources = []
    for code, mode, trusted in DEMO_SOURCES:
        source, _ = Source.objects.update_or_create(
            credit_list=CreditList.objects.get(code=code),
            defaults={
                "url": f"{base_url.rstrip('/')}/demo-feed/{code}/",
                "format": Source.Format.JSON,
                "mode": mode,
                "schedule_minutes": 10,
                "timeout_seconds": 10,
                "is_trusted": trusted,
                "trusted_by": trusted_by if trusted else None,
                "trusted_at": timezone.now() if trusted else None,
                "next_sync_at": None,
                "is_synthetic": True,
            },
        )
        sources.append(source)
    return sources


# --- Ingest -------------------------------------------------------------------------------------


def _ingest(source: Source, feed: Feed) -> Batch | None:
    from .batches import BatchError, process_batch, receive_batch  # the upload pipeline's API

    snapshot = source.mode == Source.Mode.SNAPSHOT
    in_force = Listing.objects.filter(credit_list=source.credit_list).in_force().count()
    if feed.records == 0:
        if snapshot and in_force:
            raise SyncFailed(_shrink_message(source, 0, in_force))
        _record_success(source, feed)
        return None
    if _is_repeat(source, feed):
        _record_success(source, feed)
        return None
    try:
        # One transaction: the process_batch task that receive_batch enqueues on commit then
        # finds the batch already processed and does nothing, instead of racing this run.
        with transaction.atomic():
            batch = receive_batch(
                credit_list=source.credit_list,
                payload=feed.payload,
                filename=f"sync-{source.credit_list.code}-{timezone.now():%Y%m%dT%H%M%S}.{feed.file_format}",
                mode=source.mode,
                origin=Batch.Origin.SYNC,
                actor=f"sync source #{source.pk}",
                file_format=feed.file_format,
            )
            Batch.objects.filter(pk=batch.pk).update(source=source)
            batch = process_batch(batch_id=batch.pk)
    except BatchError as exc:
        raise SyncFailed(str(exc)) from exc
    if batch.status != Batch.Status.READY:
        raise SyncFailed(f"batch #{batch.pk} ended {batch.status}: {batch.error or batch.progress_note}")
    if snapshot:
        _check_shrink(source, batch, in_force)
    if source.is_trusted:
        batch = _publish_trusted(source, batch)
    _record_success(source, feed)
    return batch


def _is_repeat(source: Source, feed: Feed) -> bool:
    """Return whether the feed is byte-identical to the list's latest batch, a run of this source.

    Then nothing happened on either side since: a new batch would only repeat it (and, for a
    source that waits for approval, pile up identical batches for a person to wade through).
    """
    latest = Batch.objects.filter(credit_list=source.credit_list).order_by("-created_at").first()
    return bool(
        latest
        and latest.source_id == source.pk
        and latest.sha256 == hashlib.sha256(feed.payload).hexdigest()
        and latest.status in (Batch.Status.READY, Batch.Status.PUBLISHING, Batch.Status.PUBLISHED)
    )


def _check_shrink(source: Source, batch: Batch, in_force: int) -> None:
    """Hold a snapshot that would remove more than the source's allowed share of the list."""
    kept = (
        BatchRow.objects.filter(batch=batch)
        .exclude(outcome=BatchRow.Outcome.INVALID)
        .exclude(action=BatchRow.Action.REMOVE)
        .count()
    )
    if in_force and kept < (1 - source.max_shrink_ratio) * in_force:
        message = _shrink_message(source, kept, in_force)
        Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.FAILED, error=message)
        raise SyncFailed(f"batch #{batch.pk}: {message}")


def _shrink_message(source: Source, kept: int, in_force: int) -> str:
    return (
        f"safety stop: the snapshot keeps {kept} of {in_force} published records, more than "
        f"{source.max_shrink_ratio:.0%} would be removed; nothing was published. Check the feed, "
        "or upload the file by hand if the removals are real."
    )


def _publish_trusted(source: Source, batch: Batch) -> Batch:
    from .batches import BatchError, publish_batch

    when = timezone.localtime(source.trusted_at).strftime("%Y-%m-%d %H:%M") if source.trusted_at else "?"
    waived_by = f"trusted source (waived by {source.trusted_by} at {when})"[:200]
    try:
        return publish_batch(batch_id=batch.pk, waived_by=waived_by)
    except BatchError as exc:
        # E.g. invalid rows: the batch stays ready and a person decides.
        raise SyncFailed(f"batch #{batch.pk} was not published, it waits for a person: {exc}") from exc


def _record_success(source: Source, feed: Feed) -> None:
    now = timezone.now()
    fields: dict[str, Any] = {
        "health": Source.Health.HEALTHY,
        "consecutive_failures": 0,
        "last_error": "",
        "last_success_at": now,
    }
    if source.mode == Source.Mode.INCREMENTAL and feed.cursor:
        fields["cursor"] = feed.cursor[:200]
    Source.objects.filter(pk=source.pk).update(**fields)
    CreditList.objects.filter(pk=source.credit_list_id).update(last_synced_at=now)
