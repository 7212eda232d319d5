"""Model status and metadata as TF Serving's protos, for both APIs."""

from __future__ import annotations

from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving.errors import Code
from serving.model_manager import ModelManager
from serving.servable import Servable

_STATE = get_model_status_pb2.ModelVersionStatus.State


def status_response(manager: ModelManager,
                    version: int | None = None) -> get_model_status_pb2.GetModelStatusResponse:
    """Every version seen (newest first), or one version; NOT_FOUND as TF Serving words it."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for entry in manager.status(version):
        status = response.model_version_status.add()
        status.version = entry.version
        status.state = _STATE.Value(entry.state)
        status.status.SetInParent()
        status.status.error_code = int(entry.error_code)
        status.status.error_message = entry.error_message
    return response


def metadata_response(name: str, servable: Servable
                      ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """The signature defs of ``servable``, Any-packed as a ``SignatureDefMap``."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = name
    response.model_spec.version.value = servable.version
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in servable.signature_defs.items():
        signatures.signature_def[key].CopyFrom(signature_def)
    response.metadata["signature_def"].Pack(signatures)
    return response


def check_metadata_fields(fields) -> None:
    from serving.errors import ServingError

    if not fields:
        raise ServingError(Code.INVALID_ARGUMENT,
                           "GetModelMetadataRequest must specify at least one metadata_field")
    for field in fields:
        if field != "signature_def":
            raise ServingError(Code.INVALID_ARGUMENT, f"Metadata field {field} is not supported")


__all__ = ["status_response", "metadata_response", "check_metadata_fields"]
