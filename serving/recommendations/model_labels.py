"""Version labels for experiment arms (``model_label``): which versions a label names, from
the service's ``model_config_file`` (a TF Serving ``ModelServerConfig`` text proto, the file
`recsys model-server --model_config_file` reads).

Guarantees: a label is servable when it names the same version of ``retrieval`` and
``item_tower`` (exported together: the query and item towers of one model), and the ranker's
version when the file labels the ranker too (else the ranker exported with that version, or
the newest); anything else is a ConfigError naming the label and the models.
"""

from __future__ import annotations

from pathlib import Path

from recsys.errors import ConfigError

TOWERS = ("retrieval", "item_tower")


def label_versions(path: Path) -> dict[str, dict[str, int]]:
    """label -> {model: version} of every label in the file."""
    from serving.options import read_model_config

    config = read_model_config(path)
    per_model = {c.name: dict(c.version_labels) for c in config.model_config_list.config}
    labels = sorted({label for labels in per_model.values() for label in labels})
    out = {}
    for label in labels:
        versions = {model: per_model[model][label] for model in per_model
                    if label in per_model[model]}
        towers = [versions.get(model) for model in TOWERS]
        if None in towers or towers[0] != towers[1]:
            raise ConfigError(
                f"model_config_file {path}: label {label!r} must name the same version of "
                f"retrieval and item_tower (one exported model), got "
                f"{ {m: versions.get(m) for m in TOWERS} }")
        out[label] = versions
    return out


__all__ = ["label_versions", "TOWERS"]
