"""The data layer: versioned schemas, validation, the Parquet lake and the data sources."""

from recsys.data.lake import Lake, WriteReport
from recsys.data.rules import ValidationPolicy
from recsys.data.schemas import EVENT_TYPES, EVENTS, ITEMS, TABLES, USERS
from recsys.data.validation import Rejection, ValidationResult, validate

__all__ = [
    "EVENTS",
    "EVENT_TYPES",
    "ITEMS",
    "Lake",
    "Rejection",
    "TABLES",
    "USERS",
    "ValidationPolicy",
    "ValidationResult",
    "WriteReport",
    "validate",
]
