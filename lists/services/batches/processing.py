"""Receive an upload, then validate and diff it in the background."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agencies.models import ApiKey
from agencies.services import record_event

from ...importers import (
    HeaderMapping,
    ImportRejected,
    Record,
    RowBuilder,
    RowResult,
    detect_format,
    map_file_headers,
    open_records,
    parse,
)
from ...importers.decoding import detect_encoding
from ...models import Batch, BatchRow, CreditList
from ..locks import BATCH_LOCK_CLASS, session_lock
from ..raw_files import RawFileError, read_raw_file, store_raw_file
from .diffing import compute_diff, feed_position, insert_matched
from .planning import drop_plans, worth_preparing
from .staging import RowStager, analyze, chunks, copy_rows, list_schema
from .workers import WorkerFailed, create_staging_table, drop_staging_table, stage_in_workers, staging_table

logger = logging.getLogger(__name__)

STRANDED_AFTER = dt.timedelta(minutes=10)
# Parsed rows are COPYed here first, then enter lists_batchrow matched in one INSERT.
_STAGING_TABLE = """
    DROP TABLE IF EXISTS _staged;
    CREATE TEMP TABLE _staged AS SELECT * FROM lists_batchrow WITH NO DATA;
"""


class BatchError(Exception):
    """An operation on a batch was refused; the message says why, for the person who asked."""


def receive_batch(
    *,
    credit_list: CreditList,
    payload: bytes,
    filename: str,
    mode: str,
    origin: str,
    actor: Any = None,
    api_key: ApiKey | None = None,
    file_format: str | None = None,
    header_overrides: dict[str, str | None] | None = None,
    ip_address: str | None = None,
) -> Batch:
    """Store an uploaded file as a new batch and enqueue its validation."""
    limit = settings.UPLOAD_MAX_BYTES
    if len(payload) > limit:
        raise BatchError(f"the file is {_mb(len(payload))}; files of at most {_mb(limit)} are accepted")
    if mode not in Batch.Mode.values:
        raise BatchError(f"unknown mode '{mode}'; use snapshot or incremental")
    _check_queue()
    sha256 = hashlib.sha256(payload).hexdigest()
    with transaction.atomic():
        batch = Batch(
            credit_list=credit_list,
            origin=origin,
            mode=mode,
            original_filename=filename[:255],
            file_size=len(payload),
            sha256=sha256,
            file_format=file_format or "",
            header_mapping={"overrides": header_overrides or {}, "confirmed": bool(header_overrides)},
            uploaded_by=actor if getattr(actor, "is_authenticated", False) else None,
            api_key=api_key,
        )
        # Encrypted at rest: uploads hold full personal ID numbers (sha256 stays the plaintext's).
        try:
            store_raw_file(batch, payload)
        except OSError as exc:  # a full or failing disk: refuse clearly, keep no row without its file
            raise BatchError(
                f"the server could not store the file ({exc.strerror or exc}); nothing was saved, "
                "please try again later"
            ) from exc
        batch.save()
        _audit("batch.receive", batch, actor, ip_address, {"sha256": sha256, "size": len(payload)})
        from ... import tasks  # the tasks module imports the services: import it late

        tasks.process_batch.delay_on_commit(batch.pk)
    return batch


def _check_queue() -> None:
    """Refuse an upload at once while the task queue is unreachable, rather than strand its batch.

    Enqueueing after commit would otherwise wait ~20 s for Celery's reconnects, then fail with the
    batch saved but never processed (docs/reliability.md, "Redis stops").
    """
    from kombu.exceptions import OperationalError as QueueUnavailable

    from ... import tasks  # the tasks module imports the services: import it late

    try:
        with tasks.process_batch.app.connection_for_write() as queue:
            queue.ensure_connection(max_retries=1, interval_start=0, interval_step=0.5, timeout=2)
    except QueueUnavailable as exc:
        raise BatchError(
            "the processing queue is unavailable; nothing was saved, please try again in a few minutes"
        ) from exc


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def _audit(
    action: str, batch: Batch, actor: Any, ip: str | None, detail: dict[str, Any] | None = None
) -> None:
    label = "" if getattr(actor, "is_authenticated", False) else str(actor or "")
    record_event(
        action=action,
        actor=actor,
        actor_label=label,
        target=batch,
        agency=batch.credit_list.agency,
        detail={"list": batch.credit_list.code, **(detail or {})},
        ip_address=ip,
    )


def stranded_batches(limit: int | None = 100) -> list[int]:
    """Return batches received long ago whose validation never started: their task was lost.

    Upload refuses a file while the queue is down, but Redis can still go between that check
    and the enqueue after commit; the batch and its file are safe, only the task is missing.
    """
    cutoff = timezone.now() - STRANDED_AFTER
    stranded = Batch.objects.filter(status=Batch.Status.RECEIVED, progress=0, created_at__lt=cutoff)
    return list(stranded.order_by("pk").values_list("pk", flat=True)[:limit])


def process_batch(*, batch_id: int) -> Batch:
    """Parse, validate and diff a received batch; safe to run again on the same batch."""
    # The queued task and an inline caller (import_list, sync) may both run it: the second
    # waits here and then finds the batch done instead of staging its rows a second time.
    with session_lock(BATCH_LOCK_CLASS, batch_id, wait=True):
        return _process_batch(batch_id)


def _process_batch(batch_id: int) -> Batch:
    batch = Batch.objects.select_related("credit_list__agency").get(pk=batch_id)
    if batch.status not in (Batch.Status.RECEIVED, Batch.Status.PROCESSING, Batch.Status.NEEDS_MAPPING):
        return batch
    _progress(batch, 1, "reading the file", status=Batch.Status.PROCESSING)
    drop_plans(batch.pk)  # made from the rows deleted here
    BatchRow.objects.filter(batch=batch).delete()
    try:
        payload = read_raw_file(batch)
    except RawFileError as exc:
        return _fail(batch, str(exc))
    # Read before any row is matched: a publication that commits while a big file is staged
    # is then seen by compute_diff, which matches the rows again.
    matched_at = feed_position(batch.credit_list_id)
    try:
        same_file = _same_file_today(batch, batch.file_format or detect_format(payload))
        if same_file is not None:
            last_line, uncertain = _clone_rows(batch, same_file), _uncertain(same_file.header_mapping)
        else:
            last_line, mapping = _stage(batch, payload)
            uncertain = bool(mapping.uncertain)
    except ImportRejected as exc:
        BatchRow.objects.filter(batch=batch).delete()
        return _fail(batch, exc.message)
    except WorkerFailed as exc:  # a bug, not the file's fault: keep the details for the operator
        logger.error("batch %s: a row-building worker failed: %s", batch.pk, exc)
        BatchRow.objects.filter(batch=batch).delete()
        return _fail(
            batch, "the file could not be checked because of an internal error; it is kept, try again"
        )
    _progress(batch, 85, "comparing with the published list")
    analyze("lists_batchrow", rows=last_line)
    counts = compute_diff(batch, last_line=last_line, matched_at=matched_at)
    confirmed = bool(batch.header_mapping.get("confirmed"))
    status = Batch.Status.NEEDS_MAPPING if uncertain and not confirmed else Batch.Status.READY
    batch.counts, batch.status, batch.progress, batch.progress_note = counts, status, 100, "done"
    batch.save(update_fields=["counts", "status", "progress", "progress_note"])
    if status == Batch.Status.READY and worth_preparing(counts):
        from ... import tasks  # the tasks module imports the services: import it late

        tasks.prepare_publication.delay_on_commit(batch.pk)
    return batch


def _same_file_today(batch: Batch, file_format: str) -> Batch | None:
    """Return an earlier batch of the same bytes, list, format and mapping, validated today.

    Its staged rows are this file's rows: copying them in SQL instead of parsing again makes
    a re-upload of an unchanged million-row file a matter of seconds. Only today's, because
    validation depends on the date (future decisions, passed expiries, minors).
    """
    return (
        Batch.objects.filter(
            credit_list_id=batch.credit_list_id,
            sha256=batch.sha256,
            file_format=file_format,
            created_at__date=timezone.localdate(),
            status__in=[
                Batch.Status.READY,
                Batch.Status.PUBLISHING,
                Batch.Status.PUBLISHED,
                Batch.Status.REJECTED,
                Batch.Status.ROLLING_BACK,
                Batch.Status.ROLLED_BACK,
            ],
        )
        .exclude(pk=batch.pk)
        .filter(header_mapping__overrides=batch.header_mapping.get("overrides") or {})
        .order_by("-pk")
        .first()
    )


def _uncertain(header_mapping: dict[str, Any]) -> bool:
    return any(c.get("confidence") == "fuzzy" for c in header_mapping.get("columns") or [])


def _clone_rows(batch: Batch, source: Batch) -> int:
    """Copy the file rows (not the snapshot removals) of an identical earlier batch."""
    last_line = int(source.counts.get("last_line", 0))
    _progress(batch, 40, f"same file as batch {source.pk}: reusing its validation")
    insert_matched(
        batch,
        source="lists_batchrow",
        where="r.batch_id = %(source)s AND r.line_no <= %(last_line)s",
        params={"source": source.pk, "last_line": last_line},
        find_duplicates=False,  # the earlier batch's rows carry them already
    )
    batch.header_mapping = {**batch.header_mapping, "columns": source.header_mapping.get("columns", [])}
    batch.file_format, batch.encoding = source.file_format, source.encoding
    batch.save(update_fields=["header_mapping", "file_format", "encoding"])
    return last_line


def _stage(batch: Batch, payload: bytes) -> tuple[int, HeaderMapping]:
    """Parse the file and COPY its rows in; return the last line number and the header mapping."""
    schema = list_schema(batch.credit_list)
    overrides = batch.header_mapping.get("overrides") or None
    fmt = batch.file_format or None
    mapping = map_file_headers(payload, schema, format=fmt, overrides=overrides)
    _save_mapping(batch, payload, mapping)
    workers = _worker_count(payload)
    opened = open_records(payload, schema, format=fmt, overrides=overrides) if workers > 1 else None
    if opened is None:
        rows = parse(payload, schema, format=fmt, overrides=overrides)
        table, last_line = "_staged", _stage_here(batch, rows, total=_line_estimate(payload))
    else:
        table = staging_table(batch)
        create_staging_table(table)
        last_line = _stage_in_workers(
            batch, *opened, workers=workers, table=table, total=_line_estimate(payload)
        )
    try:
        insert_matched(batch, source=table, where="true", params={}, find_duplicates=True)
    finally:
        if table == "_staged":
            with connection.cursor() as cursor:
                cursor.execute("DROP TABLE IF EXISTS _staged")
        else:
            drop_staging_table(table)
    return last_line, mapping


def _worker_count(payload: bytes) -> int:
    """Return how many processes should build the rows: one (this one) unless the file is big."""
    if len(payload) < settings.BATCH_PARALLEL_MIN_BYTES:
        return 1
    return max(1, settings.BATCH_WORKERS)


def _line_estimate(payload: bytes) -> int:
    return max(payload.count(b"\n"), 1)


def _stage_here(batch: Batch, rows: Iterator[RowResult], *, total: int) -> int:
    """Build and COPY the rows in this process; return the last line number."""
    stager = RowStager(batch)
    staged = 0
    with connection.cursor() as cursor:
        cursor.execute(_STAGING_TABLE)
    report = _progress_reporter(batch, total)
    for chunk in chunks(stager.stage(row) for row in rows):
        copy_rows(chunk, table="_staged")
        staged += len(chunk)
        report(staged, stager.last_line)
    analyze("_staged", rows=staged)
    return stager.last_line


def _progress_reporter(batch: Batch, total_lines: int) -> Callable[[int, int], None]:
    """Return a callback that records reading progress at most once a second."""
    last = 0.0

    def report(rows: int, last_line: int) -> None:
        nonlocal last
        if time.monotonic() - last < 1:
            return
        last = time.monotonic()
        percent = min(80, 5 + int(75 * min(last_line / total_lines, 1)))
        _progress(batch, percent, f"{rows:,} rows read", counts={"rows": rows})

    return report


def _stage_in_workers(
    batch: Batch, builder: RowBuilder, records: Iterator[Record], *, workers: int, table: str, total: int
) -> int:
    """Build and stage the rows in worker processes; return the last line number."""
    try:
        staged, last_line = stage_in_workers(
            batch,
            builder,
            records,
            workers=workers,
            table=table,
            on_progress=_progress_reporter(batch, total),
        )
    except BaseException:
        drop_staging_table(table)
        raise
    analyze(table, rows=staged)
    return last_line


def _save_mapping(batch: Batch, payload: bytes, mapping: HeaderMapping) -> None:
    columns = [
        {"header": c.header, "key": c.key, "field": c.field, "confidence": c.confidence, "note": c.note}
        for c in mapping.columns
    ]
    batch.header_mapping = {**batch.header_mapping, "columns": columns}
    if not batch.file_format:
        batch.file_format = detect_format(payload)
    if batch.file_format in ("csv", "keyvalue", "jsonl"):
        try:
            batch.encoding = detect_encoding(payload)[:20]
        except ImportRejected:
            batch.encoding = ""
    batch.save(update_fields=["header_mapping", "file_format", "encoding"])


def _progress(
    batch: Batch, percent: int, note: str, *, status: str | None = None, counts: dict | None = None
) -> None:
    """Record progress outside any transaction so the batch page sees it at once."""
    fields: dict[str, Any] = {"progress": percent, "progress_note": note[:200]}
    if status:
        fields["status"] = batch.status = status
    if counts is not None:
        fields["counts"] = batch.counts = counts
    Batch.objects.filter(pk=batch.pk).update(**fields)


def _fail(batch: Batch, message: str) -> Batch:
    batch.status, batch.error, batch.progress, batch.progress_note = (
        Batch.Status.FAILED,
        message,
        100,
        "failed",
    )
    batch.counts = {}
    batch.save(update_fields=["status", "error", "progress", "progress_note", "counts"])
    return batch


def confirm_mapping(
    *, batch_id: int, overrides: dict[str, str | None], actor: Any, ip_address: str | None = None
) -> Batch:
    """Store the uploader's column mapping and validate the batch again with it."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().select_related("credit_list__agency").get(pk=batch_id)
        if batch.status not in (Batch.Status.NEEDS_MAPPING, Batch.Status.READY, Batch.Status.FAILED):
            raise BatchError(f"a batch that is {batch.get_status_display().lower()} cannot be re-mapped")
        batch.header_mapping = {**batch.header_mapping, "overrides": overrides, "confirmed": True}
        batch.status, batch.error = Batch.Status.RECEIVED, ""
        batch.save(update_fields=["header_mapping", "status", "error"])
        _audit("batch.confirm_mapping", batch, actor, ip_address, {"overrides": overrides})
        from ... import tasks

        tasks.process_batch.delay_on_commit(batch.pk)
    return batch


def reject_batch(*, batch_id: int, actor: Any, reason: str = "", ip_address: str | None = None) -> Batch:
    """Refuse a batch that has not been published; its file and rows are kept."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().select_related("credit_list__agency").get(pk=batch_id)
        if batch.status in (
            Batch.Status.PUBLISHING, Batch.Status.PUBLISHED, Batch.Status.ROLLING_BACK, Batch.Status.ROLLED_BACK
        ):  # fmt: skip
            raise BatchError("a published batch cannot be rejected; roll it back instead")
        if batch.status == Batch.Status.REJECTED:
            raise BatchError("the batch is already rejected")
        batch.status, batch.error = Batch.Status.REJECTED, reason[:2000]
        batch.save(update_fields=["status", "error"])
        drop_plans(batch.pk)
        _audit("batch.reject", batch, actor, ip_address, {"reason": reason})
    return batch
