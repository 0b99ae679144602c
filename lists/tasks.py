"""Celery tasks: each takes IDs, calls one service and owns its retries."""

from __future__ import annotations

from celery import shared_task

from .services import lifecycle, measures


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def expire_listings() -> int:
    """End listings whose publication period has passed (safe to run any number of times)."""
    return lifecycle.expire_listings()


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def apply_measures(listing_ids: list[int] | None = None) -> dict[str, int]:
    """Recompute restrictions from the current catalogue edition."""
    result = measures.apply_measures(listing_ids=listing_ids)
    return {"lifted": result.lifted, "derived": result.derived}
