"""Process-wide runtime settings that must exist before TensorFlow is imported.

Importing this module (every entry point does so through ``import recsys``) guarantees:

* ``TF_USE_LEGACY_KERAS=1`` is in the environment, so ``tf.keras`` is Keras 2 (``tf_keras``),
  which TensorFlow Recommenders 0.7.7 requires. If TensorFlow was already imported with another
  Keras, :class:`~recsys.errors.StackVersionError` is raised instead of failing later.
* Prometheus metrics keep their values in the process (prometheus_client's default) unless
  ``PROMETHEUS_MULTIPROC_DIR`` was set before the process started (`recsys api --workers N`
  sets it for its workers). Feast 0.67 sets that variable to a temporary directory when it is
  imported, which would switch every metric of the process to shared files: metrics made
  later with the same name then start from each other's values, and every increment writes
  to a memory-mapped file. prometheus_client decides once, when first imported, so it is
  imported here, before Feast can be.
* :func:`check_stack` compares the installed ML stack with the versions this project is built
  and tested against and explains what to install when they differ.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Callable, Mapping

from recsys.errors import StackVersionError

_LEGACY_KERAS_VAR = "TF_USE_LEGACY_KERAS"


def _configure_legacy_keras() -> None:
    if "tensorflow" in sys.modules and os.environ.get(_LEGACY_KERAS_VAR) != "1":
        raise StackVersionError(
            "tensorflow was imported before recsys without TF_USE_LEGACY_KERAS=1, so tf.keras is "
            "Keras 3, which tensorflow-recommenders refuses. Import recsys (or any of trainer, "
            "serving, beam_jobs) before tensorflow, or export TF_USE_LEGACY_KERAS=1."
        )
    os.environ[_LEGACY_KERAS_VAR] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ info lines (oneDNN, CUDA probing)


_configure_legacy_keras()


def _fix_metrics_storage() -> None:
    import prometheus_client.values  # noqa: F401  (decides the value class now)


_fix_metrics_storage()


@dataclass(frozen=True)
class Requirement:
    """One pinned distribution: ``prefix`` is matched against the installed version."""

    distribution: str
    prefix: str
    reason: str

    @property
    def pin(self) -> str:
        return f"{self.distribution}=={self.prefix}*" if self.prefix.endswith(".") else (
            f"{self.distribution}=={self.prefix}"
        )

    def accepts(self, version: str) -> bool:
        if self.prefix.endswith("."):
            return version.startswith(self.prefix)
        return version == self.prefix


STACK: tuple[Requirement, ...] = (
    Requirement("tensorflow", "2.20.", "ScaNN 1.4.2 ships ops built against TensorFlow 2.20 only"),
    Requirement("tf-keras", "2.20.", "tensorflow-recommenders needs Keras 2 matching TensorFlow"),
    Requirement("tensorflow-recommenders", "0.7.7", "the models subclass tfrs.Model"),
    Requirement("scann", "1.4.2", "its TF ops must match the TensorFlow build"),
)


def installed_versions(
    requirements: tuple[Requirement, ...] = STACK,
    lookup: Callable[[str], str] = metadata.version,
) -> dict[str, str | None]:
    """Installed version of each required distribution (None when it is absent)."""
    found: dict[str, str | None] = {}
    for req in requirements:
        try:
            found[req.distribution] = lookup(req.distribution)
        except metadata.PackageNotFoundError:
            found[req.distribution] = None
    return found


def stack_problems(
    installed: Mapping[str, str | None], requirements: tuple[Requirement, ...] = STACK
) -> list[str]:
    """One human-readable line per requirement that the installed versions do not meet."""
    problems = []
    for req in requirements:
        version = installed.get(req.distribution)
        if version is None:
            problems.append(f"{req.distribution} is not installed; this project needs {req.pin} "
                            f"({req.reason})")
        elif not req.accepts(version):
            problems.append(f"{req.distribution} {version} is installed but this project needs "
                            f"{req.pin} ({req.reason})")
    return problems


def check_stack(installed: Mapping[str, str | None] | None = None) -> None:
    """Raise :class:`StackVersionError` naming every mismatch and the command that fixes it.

    Cheap: reads package metadata only, never imports TensorFlow.
    """
    problems = stack_problems(installed if installed is not None else installed_versions())
    if problems:
        pins = " ".join(f"'{req.pin}'" for req in STACK)
        raise StackVersionError(
            "the installed ML stack does not match the one recsys is built for:\n  - "
            + "\n  - ".join(problems)
            + f"\nFix: pip install -c constraints.txt {pins}"
        )
