"""TF Serving's REST API (``/v1/models/...``) as an ASGI app (Starlette, served by uvicorn).

URLs, JSON formats, error bodies and status codes follow TF Serving 2.x (see
docs/tf_serving_behaviour.md): ``GET /v1/models/{m}[/versions/{v}|/labels/{l}][/metadata]``,
``POST /v1/models/{m}[/versions/{v}|/labels/{l}]:predict``; errors are ``{"error": "..."}``
with TF Serving's mapping of error codes to HTTP statuses; paths outside ``/v1/`` get the
plain 404 page TF Serving's HTTP layer sends; the Prometheus page is served at its configured
path when monitoring is enabled.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Callable
from urllib.parse import unquote

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving.errors import Code, ServingError, json_error_body
from serving.json_codec import decode_inputs, encode_predict_response, parse_predict_request
from serving.prediction import Predictor
from serving.status import metadata_response, status_response

log = logging.getLogger(__name__)

POST_PATH = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                       r":(classify|regress|predict)", re.IGNORECASE)
GET_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                      r"(?:/(metadata))?", re.IGNORECASE)
NOT_FOUND_PAGE = (b"<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n"
                  b"<H1>Not Found</H1>\n</BODY></HTML>\n")
JSON = "application/json"


def _proto_json(message) -> str:
    return json_format.MessageToJson(message, indent=1, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    value = int(text)
    if value >= 2 ** 63:
        raise ServingError(Code.INVALID_ARGUMENT, f"Failed to convert version: {text} to numeric.")
    return value


class RestApi:
    """The handlers; ``metrics_page`` renders the Prometheus page (None = monitoring off)."""

    def __init__(self, predictor: Predictor, timeout_s: float,
                 metrics_path: str | None = None,
                 metrics_page: Callable[[], str] | None = None, num_threads: int = 16):
        self.num_threads = num_threads
        self._threads_set = False
        self.predictor = predictor
        self.core = predictor.core
        self.timeout_s = timeout_s
        self.metrics_path = metrics_path
        self.metrics_page = metrics_page

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
        return Starlette(routes=[Route("/{path:path}", self.dispatch, methods=methods)])

    async def dispatch(self, request: Request) -> Response:
        if not self._threads_set:  # --rest_api_num_threads: the worker threads of this loop
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = self.num_threads
            self._threads_set = True
        path = request.url.path
        if self.metrics_page is not None and path == self.metrics_path:
            page = await run_in_threadpool(self.metrics_page)
            return Response(page, media_type="text/plain")
        if not re.fullmatch(r"/v1/.*", path, re.IGNORECASE):
            return Response(NOT_FOUND_PAGE, status_code=404, media_type="text/html")
        try:
            body = await request.body()
            work = self._route(request.method, path, body)
            result = await asyncio.wait_for(run_in_threadpool(work), self.timeout_s)
            return Response(result, media_type=JSON)
        except ServingError as exc:
            return _error(exc.code, exc.message)
        except asyncio.TimeoutError:
            return _error(Code.DEADLINE_EXCEEDED, "Deadline Exceeded")
        except Exception as exc:  # noqa: BLE001 - never a stack trace to a client
            log.exception("REST %s %s failed", request.method, path)
            return _error(Code.INTERNAL, f"{type(exc).__name__}: {exc}")

    def _route(self, method: str, path: str, body: bytes) -> Callable[[], bytes]:
        post = POST_PATH.fullmatch(path)
        if method == "POST" and post and post.group(4) == "predict":
            name, version, label = unquote(post.group(1)), _version(post.group(2)), post.group(3)
            return lambda: self._predict(name, version, label and unquote(label), body)
        if method == "POST" and post:
            kind = post.group(4)
            return lambda: _raise(Code.UNIMPLEMENTED, f"{kind} is not supported by this model "
                                                      "server (its models have predict "
                                                      "signatures only); use :predict")
        get = GET_PATH.fullmatch(path)
        if method == "GET" and get:
            if get.group(1) is None:
                return lambda: _raise(Code.INVALID_ARGUMENT, "Missing model name in request.")
            name, version = unquote(get.group(1)), _version(get.group(2))
            label = get.group(3) and unquote(get.group(3))
            if get.group(4):
                return lambda: self._metadata(name, version, label)
            return lambda: self._status(name, version)
        return lambda: _raise(Code.INVALID_ARGUMENT, f"Malformed request: {method} {path}")

    def _predict(self, name: str, version: int | None, label: str | None, body: bytes) -> bytes:
        servable = self.predictor.resolve(name, version, label)  # TF Serving's order
        request = parse_predict_request(body)
        prediction = self.predictor.predict(
            name, version, label, request.signature_name,
            lambda signature: decode_inputs(request, signature.inputs), api="Predict",
            entrypoint="REST", servable=servable)
        return encode_predict_response(prediction.outputs, request.format)

    def _status(self, name: str, version: int | None) -> bytes:
        manager = self.core.manager(name, for_status=True)
        return _proto_json(status_response(manager, version)).encode()

    def _metadata(self, name: str, version: int | None, label: str | None) -> bytes:
        servable = self.predictor.resolve(name, version, label)
        response = metadata_response(name, servable)
        from tensorflow_serving.apis import get_model_metadata_pb2

        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        text = ('{\n"model_spec":' + _proto_json(response.model_spec) + ",\n"
                '"metadata": {"signature_def": ' + _proto_json(signatures) + "}\n}\n")
        return text.encode()


def _raise(code: Code, message: str) -> bytes:
    raise ServingError(code, message)


def _error(code: Code, message: str) -> Response:
    return Response(json_error_body(message), status_code=code.http_status, media_type=JSON)


__all__ = ["RestApi", "POST_PATH", "GET_PATH"]
