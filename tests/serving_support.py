"""Test support for the model server: exported models of the small platform, free ports, and
a server started on them in this process."""

from __future__ import annotations

from pathlib import Path

from serving.options import ServerOptions
from serving.recommendations.http_server import free_port
from serving.server import ModelServer


def export_small_models(model_dir: Path, repo: Path, base: Path, k: int = 10):
    """Version 1 of retrieval, retrieval_portable and item_tower under ``base``; ScaNN set to
    search exhaustively, so the two retrieval models agree exactly (ANN recall is tested in
    test_retrieval_export)."""
    from recsys.features.catalogue import read_catalogue
    from trainer.export import export_models
    from trainer.model_dir import ModelDir
    from trainer.scann_config import ScannConfig

    directory = ModelDir(model_dir)
    _, _, model = directory.restore()
    return export_models(model, read_catalogue(repo / "data"), directory.data_end_us(), base,
                         k=k, scann=ScannConfig(exact=True))


def start_server(**options) -> ModelServer:
    defaults = {"port": free_port(), "rest_api_port": free_port(), "host": "127.0.0.1",
                "file_system_poll_wait_seconds": 1}
    return ModelServer(ServerOptions(**{**defaults, **options})).start()


def config_text(models: dict[str, Path], policies: dict[str, str] | None = None,
                labels: dict[str, dict[str, int]] | None = None) -> str:
    """A ModelServerConfig text proto for ``models`` (name -> base path)."""
    blocks = []
    for name, path in models.items():
        policy = (policies or {}).get(name, "")
        label_lines = "".join(f'  version_labels {{ key: "{k}" value: {v} }}\n'
                              for k, v in ((labels or {}).get(name) or {}).items())
        blocks.append(f'config {{\n  name: "{name}"\n  base_path: "{path}"\n'
                      f'  model_platform: "tensorflow"\n'
                      + (f"  model_version_policy {{ {policy} }}\n" if policy else "")
                      + label_lines + "}\n")
    return "model_config_list {\n" + "".join(blocks) + "}\n"
