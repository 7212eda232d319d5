"""Whether the model server serves a version label: TF Serving's metadata API
(``GET /v1/models/{model}/labels/{label}/metadata`` on its REST port) resolves the label and
names the version in ``model_spec.version``; an unknown label is an error. (Its status API,
``GET /v1/models/{model}/labels/{label}``, ignores the label and lists every version:
docs/tf_serving_behaviour.md.) A label can only point at an AVAILABLE version.

A label moved in the registry reaches the model server only once the version is loaded and
the server has re-read its config (a label on a version that is not loaded yet is refused and
tried again at the next poll). Traffic sent to the label before that fails, so the controller
waits for it before the canary's experiment sends users there.

Guarantees: ``label_version`` answers the version the model server resolves the label to,
and None for anything else (unknown label, unknown model, server unreachable). What each
model should serve is the registry's ``label_versions``.
"""

from __future__ import annotations

import time
from typing import Callable


def label_version(rest_url: str, model: str, label: str, timeout_s: float = 5.0
                  ) -> int | None:
    """The version ``label`` resolves to in ``model`` (None: not served)."""
    import requests

    try:
        answer = requests.get(f"{rest_url.rstrip('/')}/v1/models/{model}/labels/{label}"
                              "/metadata", timeout=timeout_s)
        if answer.status_code != 200:
            return None
        return int(answer.json()["model_spec"]["version"])
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def wait_for_label(lookup: Callable[[str, str], int | None], wanted: dict[str, int],
                   label: str, wait_s: float, sleep: Callable[[float], None],
                   clock: Callable[[], float] = time.monotonic) -> dict[str, int | None]:
    """Poll ``lookup(model, label)`` until every model serves its ``wanted`` version or
    ``wait_s`` passed; returns what each model served at the end."""
    deadline = clock() + wait_s
    while True:
        served = {model: lookup(model, label) for model in wanted}
        if served == wanted or clock() >= deadline:
            return served
        sleep(0.5)


__all__ = ["label_version", "wait_for_label"]
