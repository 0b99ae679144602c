"""What is published: lists, subjects, listings, measures, restrictions, batches, the feed."""

from .batches import Batch, BatchRow
from .catalogue import PERSON_TYPES, CatalogueEdition, CreditList, Measure, SubjectType
from .feed import Change
from .listings import Listing, Restriction
from .subjects import Subject, SubjectName

__all__ = [
    "PERSON_TYPES",
    "Batch",
    "BatchRow",
    "CatalogueEdition",
    "Change",
    "CreditList",
    "Listing",
    "Measure",
    "Restriction",
    "Subject",
    "SubjectName",
    "SubjectType",
]
