"""Errors of the model server: TF Serving's status codes, their HTTP/gRPC mapping and error body.

Every failure a client can see is a :class:`ServingError` carrying one :class:`Code`
(``tensorflow::error::Code``, numbered like gRPC). The REST layer answers with
``code.http_status`` and :func:`json_error_body`; the gRPC layer aborts with ``code.grpc_status``.
"""

from __future__ import annotations

import enum

# ToHTTPStatusCode in tensorflow_serving/model_servers/http_server.cc (docs/tf_serving_behaviour.md
# section 2.2)
_HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400,
    "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500,
    "UNAVAILABLE": 503, "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}


class Code(enum.IntEnum):
    """``tensorflow.error.Code``; the numbers are the gRPC status codes."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST API answers with for this code."""
        return _HTTP_STATUS[self.name]

    @property
    def grpc_status(self):
        """The matching ``grpc.StatusCode`` (grpc is imported only when this is asked for)."""
        import grpc

        return grpc.StatusCode[self.name]


class ServingError(Exception):
    """A failure reported to the client: ``str(exc)`` is the message, exactly as TF Serving's."""

    def __init__(self, code: Code, message: str):
        super().__init__(message)
        self.code = Code(code)
        self.message = message

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"

    def __reduce__(self):  # picklable across processes despite the two-argument constructor
        return type(self), (self.code, self.message)


# rapidjson Writer::String escapes '"', '\\' and the C0 controls (upper-case hex), nothing else;
# other characters, including non-ASCII, are written raw (as UTF-8).
_ESCAPES = {c: f"\\u{c:04X}" for c in range(0x20)}
_ESCAPES.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r",
                 ord('"'): '\\"', ord("\\"): "\\\\"})


def json_quote(text: str) -> str:
    """``text`` as a JSON string literal, escaped the way TF Serving's rapidjson writer does."""
    return '"' + text.translate(_ESCAPES) + '"'


def encode_utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text``; bytes that arrived undecodable (surrogate-escaped) go back as is."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def json_error_body(message: str) -> bytes:
    """TF Serving's error body: ``{"error": "<message>"}`` pretty-printed with a 4-space indent.

    Byte-identical to ``json.dumps({"error": message}, indent=4, ensure_ascii=False)`` except that
    control characters use upper-case hex (``\\u001F``), as rapidjson writes them. Non-ASCII is
    written raw, as TF Serving does, not as ``\\u`` escapes.
    """
    return encode_utf8('{\n    "error": ' + json_quote(message) + "\n}")
