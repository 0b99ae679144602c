"""What is published: lists, subjects, listings, measures, restrictions, batches, the feed."""

from .batches import Batch, BatchRow
from .cases import Case, CaseEvent, Evidence, Holiday
from .catalogue import PERSON_TYPES, CatalogueEdition, CreditList, Measure, SubjectType
from .feed import Change
from .integrations import ApiRequestLog, Export, WatchItem, Watchlist, Webhook, WebhookDelivery  # noqa: F401
from .listings import Listing, PendingRecompute, Restriction
from .reports import CreditReport
from .subjects import Subject, SubjectName
from .sync import Source

__all__ = [
    "PERSON_TYPES",
    "Batch",
    "BatchRow",
    "Case",
    "CaseEvent",
    "CatalogueEdition",
    "Change",
    "CreditList",
    "CreditReport",
    "Evidence",
    "Holiday",
    "Listing",
    "Measure",
    "PendingRecompute",
    "Restriction",
    "Source",
    "Subject",
    "SubjectName",
    "SubjectType",
]
