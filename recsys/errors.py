"""The error hierarchy of recsys. Every error says what was wrong and how to fix it."""

from __future__ import annotations

__all__ = [
    "RecsysError",
    "ConfigError",
    "SchemaError",
    "BadRecordRatioError",
    "LakeError",
    "FeatureStoreError",
    "SourceError",
    "StackVersionError",
]


class RecsysError(Exception):
    """Base class: the CLI prints these as ``recsys: error: <message>`` and exits with 1."""


class ConfigError(RecsysError, ValueError):
    """A configuration value or command-line flag is invalid; the message names it."""


class SchemaError(RecsysError, ValueError):
    """A whole input does not fit a table schema (missing or unknown columns)."""


class BadRecordRatioError(RecsysError):
    """Too many records of one input were rejected; nothing of that input was written."""


class PipelineRunError(RecsysError):
    """A batch pipeline failed on its runner (a worker or the cluster went away, a task kept
    failing); the message names the runner and says which outputs were kept."""


class SourceError(RecsysError):
    """An input file or directory is missing, unreadable or not in the expected format."""


class LakeError(RecsysError):
    """The lake on disk is missing, corrupt, or written by an incompatible version."""


class FeatureStoreError(RecsysError):
    """The feature store (its offline tables, registry or online store) cannot be reached or
    is missing what a command needs."""


class StackVersionError(RecsysError, ImportError):
    """The installed TensorFlow / Keras / ScaNN / TFRS versions are not the supported set."""
