"""The batch pipeline: receive, validate and diff, publish, reject, roll back.

receive_batch → (task) process_batch → publish_batch → rollback_batch
                                     ↘ reject_batch
A big batch is published and rolled back by a task (queued.py).
"""

from .processing import (
    BatchError,
    confirm_mapping,
    process_batch,
    receive_batch,
    reject_batch,
    stranded_batches,
)
from .publishing import check_approver, publish_batch
from .queued import (
    late_since,
    publish_queued,
    request_publication,
    request_rollback,
    rollback_queued,
    stranded_actions,
)
from .rollback import rollback_batch
from .staging import list_schema

__all__ = [
    "BatchError",
    "check_approver",
    "confirm_mapping",
    "late_since",
    "list_schema",
    "process_batch",
    "publish_batch",
    "publish_queued",
    "receive_batch",
    "reject_batch",
    "request_publication",
    "request_rollback",
    "rollback_batch",
    "rollback_queued",
    "stranded_actions",
    "stranded_batches",
]
