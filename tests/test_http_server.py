"""Serving an ASGI app in a background thread must leave the host process's logging alone."""

from __future__ import annotations

import logging

import requests
from fastapi import FastAPI

from serving.recommendations.http_server import serve_in_thread


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def test_serve_in_thread_answers_and_keeps_existing_log_handlers_open(tmp_path):
    # uvicorn's default logging config runs logging.config.dictConfig, which closes every
    # handler of the process: the host's log files (and pytest's captured streams) with them.
    handler = logging.FileHandler(tmp_path / "host.log")
    logger = logging.getLogger("host-app")
    logger.addHandler(handler)
    try:
        with serve_in_thread(_app()) as url:
            assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        assert handler.stream is not None and not handler.stream.closed
        logger.warning("still logging")
        handler.flush()
        assert "still logging" in (tmp_path / "host.log").read_text()
    finally:
        logger.removeHandler(handler)
        handler.close()
