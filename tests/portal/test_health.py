"""GET /healthz/work: what background work is late, for a monitor that alerts an operator."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from lists.models import Batch, CreditList, PendingRecompute, Source
from lists.services import batches, measures

pytestmark = pytest.mark.django_db
LATE = {"batches_not_started": 0, "batches_queued": 0, "recomputes": 0, "stale_sources": 0}


def received_batch(tax_list: CreditList) -> Batch:
    return batches.receive_batch(
        credit_list=tax_list,
        payload="名称\n某公司\n".encode(),
        filename="a.csv",
        mode="incremental",
        origin="command",
    )


def test_late_work_answers_503_with_what_is_late_until_it_is_done(client):
    url = reverse("healthz-work")
    assert client.get(url).status_code == 200 and client.get(url).json() == {"late": LATE}

    tax_list = CreditList.objects.get(code="TAX_MAJOR_VIOLATION")
    eleven_minutes_ago = timezone.now() - dt.timedelta(minutes=11)
    not_started = received_batch(tax_list)
    Batch.objects.filter(pk=not_started.pk).update(created_at=eleven_minutes_ago)
    queued = received_batch(tax_list)
    Batch.objects.filter(pk=queued.pk).update(status=Batch.Status.PUBLISHING, queued_at=eleven_minutes_ago)
    fresh_recompute = measures.defer_recompute(reason="catalogue")
    late_recompute = measures.defer_recompute(reason="catalogue")
    PendingRecompute.objects.filter(pk=late_recompute).update(
        created_at=timezone.now() - dt.timedelta(hours=2)
    )
    Source.objects.create(credit_list=tax_list, url="https://feed.example.gov.cn/list.json")  # never synced

    response = client.get(url)
    assert response.status_code == 503
    assert response.json() == {
        "late": {"batches_not_started": 1, "batches_queued": 1, "recomputes": 1, "stale_sources": 1}
    }
    assert "某公司" not in response.content.decode(), "counts only"

    batches.process_batch(batch_id=not_started.pk)
    Batch.objects.filter(pk=queued.pk).update(status=Batch.Status.READY, queued_at=None)
    measures.finish_recompute(late_recompute)
    Source.objects.update(last_success_at=timezone.now())
    assert client.get(url).status_code == 200
    assert PendingRecompute.objects.filter(pk=fresh_recompute).exists(), "a recent recompute is not late"
