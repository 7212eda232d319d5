"""The console's routes: pages under ``/console`` (server-rendered with Jinja2), the JSON every
page and chart is drawn from under ``/console/api``, sign-in with an API key, and the static
files (the console's own script and style, and Chart.js 4, vendored: no build step, no
network).

Access (enforced by :class:`serving.access.guard.AccessGuard` before a route runs): pages
and their JSON need the ``console`` scope (or ``admin``), actions (promote, roll back)
``admin`` and the page's CSRF token; sign-in, sign-out and the static files are public.
Every page is also its JSON: ``/console/X`` is drawn from ``/console/api/X``. The pages are in
the OpenAPI document too (tag ``console pages``), so that the fuzz run covers them.
"""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path

import orjson
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse

from recsys.errors import ConfigError
from recsys.model_contract.registry import ALIASES
from serving.access.keys import ADMIN, CONSOLE
from serving.access.sessions import COOKIE
from serving.console.context import ConsoleContext
from serving.console.experiments_view import experiments_view
from serving.console.item_view import UnknownItem, item_view
from serving.console.models_view import Change, models_view
from serving.console.overview import overview
from serving.console.user_view import user_view

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
STATIC = {"console.js": "text/javascript", "console.css": "text/css",
          "chart.umd.min.js": "text/javascript"}
MAX_ID = 256
PUBLIC = frozenset({"/console/login", "/console/logout"})


def console_scope(method: str, path: str) -> str | None:
    """The scope a console path needs (None: public)."""
    if path in PUBLIC or path.startswith("/console/static/"):
        return None
    return CONSOLE if method in ("GET", "HEAD") else ADMIN


def _templates():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]))
    env.filters["json"] = lambda value: orjson.dumps(value).decode()
    env.filters["json_script"] = _json_script
    env.filters["num"] = _number
    return env


def _number(value, form: str = "%g") -> str:
    """``value`` formatted, or "-" for a figure that is missing (None: NaN in the JSON)."""
    if value is None:
        return "-"
    try:
        return form % value
    except (TypeError, ValueError):
        return str(value)


def _json_script(value):
    """``value`` as JSON (a Markup string) safe inside a ``<script type="application/json">``
    block: ``<``, ``>`` and ``&`` escaped as JSON's \\u escapes, so no value closes it."""
    from markupsafe import Markup

    text = orjson.dumps(value).decode()
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e")
                  .replace("&", "\\u0026"))


def _error(status: int, code: str, detail) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def add_console_routes(app: FastAPI, ctx: ConsoleContext) -> None:
    env = _templates()

    def page(request: Request, name: str, title: str, api: str, **values) -> HTMLResponse:
        state = request.scope.get("state", {})
        identity = state.get("api_key") or {}
        html = env.get_template(f"{name}.html").render(
            title=title, api=api, page=name, csrf=state.get("csrf_token", ""),
            who=identity.get("name"), admin=ADMIN in identity.get("scopes", ()),
            open_service=ctx.policy.is_open, **values)
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    @app.get("/console", response_class=HTMLResponse, tags=["console pages"])
    def console_overview(request: Request):
        return page(request, "overview", "Overview", "/console/api/overview",
                    data=overview(ctx))

    @app.get("/console/api/overview", tags=["console"])
    def api_overview(since_s: float = Query(3600.0, gt=0, le=86_400)):
        """Requests/s by tier, per-stage latency percentiles, fallbacks by reason, refusals,
        ingestion, the stream's lag and freshness over the last hour; breakers now."""
        return overview(ctx, since_s)

    user_id_param = PathParam(..., min_length=1, max_length=MAX_ID)

    @app.get("/console/users", tags=["console pages"])
    def find_user(user_id: str = Query(..., min_length=1, max_length=MAX_ID)):
        return RedirectResponse(f"/console/users/{urllib.parse.quote(user_id, safe='')}",
                                status_code=303)

    def _user(user_id: str, compare: str, k: int):
        recommender = ctx.recommender
        if compare and compare not in recommender.labelled and compare != \
                recommender.serving_label:
            return None, _error(404, "unknown_label", f"no model version label {compare!r} is "
                                f"loaded (loaded: {sorted(recommender.labelled)})")
        return user_view(ctx, user_id, min(k, recommender.cfg.max_k), compare), None

    @app.get("/console/users/{user_id}", response_class=HTMLResponse, tags=["console pages"])
    def console_user(request: Request, user_id: str = user_id_param,
                     compare: str = Query("", max_length=64),
                     k: int = Query(10, ge=1, le=100)):
        data, refused = _user(user_id, compare, k)
        if refused is not None:
            return refused
        return page(request, "user", f"User {user_id}",
                    f"/console/api/users/{urllib.parse.quote(user_id, safe='')}", data=data)

    @app.get("/console/api/users/{user_id}", tags=["console"])
    def api_user(user_id: str = user_id_param, compare: str = Query("", max_length=64),
                 k: int = Query(10, ge=1, le=100)):
        """The user's features and history, the recommendations they get now (not counted
        as traffic, not logged as exposures), the request's trace and arms, and with
        ``compare`` another loaded model version label's list."""
        data, refused = _user(user_id, compare, k)
        return refused if refused is not None else data

    @app.get("/console/items", tags=["console pages"])
    def find_item(item_id: str = Query(..., min_length=1, max_length=MAX_ID)):
        return RedirectResponse(f"/console/items/{urllib.parse.quote(item_id, safe='')}",
                                status_code=303)

    def _item(item_id: str):
        try:
            return item_view(ctx, item_id), None
        except UnknownItem:
            return None, _error(404, "unknown_item", f"no item {item_id!r} in the index or "
                                                     "the online store")

    @app.get("/console/items/{item_id}", response_class=HTMLResponse, tags=["console pages"])
    def console_item(request: Request, item_id: str = PathParam(..., min_length=1,
                                                                max_length=MAX_ID)):
        data, refused = _item(item_id)
        if refused is not None:
            return refused
        return page(request, "item", f"Item {item_id}",
                    f"/console/api/items/{urllib.parse.quote(item_id, safe='')}", data=data)

    @app.get("/console/api/items/{item_id}", tags=["console"])
    def api_item(item_id: str = PathParam(..., min_length=1, max_length=MAX_ID)):
        """The item's features, index entry, nearest items, counters over 24 hours and
        places in the popular lists."""
        data, refused = _item(item_id)
        return refused if refused is not None else data

    @app.get("/console/experiments", response_class=HTMLResponse, tags=["console pages"])
    def console_experiments(request: Request):
        return page(request, "experiments", "Experiments", "/console/api/experiments",
                    data=experiments_view(ctx))

    @app.get("/console/api/experiments", tags=["console"])
    def api_experiments():
        """Experiments: arms, the live sample ratio check, metrics with intervals over time."""
        return experiments_view(ctx)

    @app.get("/console/models", response_class=HTMLResponse, tags=["console pages"])
    def console_models(request: Request):
        return page(request, "models", "Models", "/console/api/models",
                    data=models_view(ctx))

    @app.get("/console/api/models", tags=["console"])
    def api_models():
        """Versions, aliases, the promotion log, served versions, drift and index health."""
        return models_view(ctx)

    def change(action: str):
        async def handler(request: Request):
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                return _error(400, "malformed_json", "the request body is not valid JSON")
            try:
                wanted = Change.parse(action, body)
            except ConfigError as exc:
                return _error(422, "invalid_request", str(exc))
            who = (request.scope.get("state", {}).get("api_key") or {}).get("name", "?")
            try:
                from starlette.concurrency import run_in_threadpool

                entry = await run_in_threadpool(wanted.apply, ctx, f"console:{who}")
            except ConfigError as exc:  # the registry refused: say why
                return _error(409, "refused", str(exc))
            log.info("console: %s %s -> %s by %s (%s)", action, wanted.alias, entry.get("to"),
                     who, wanted.reason)
            return entry
        return handler

    for action in ("promote", "rollback"):
        app.add_api_route(f"/console/api/models/{action}", change(action), methods=["POST"],
                          tags=["console"], summary=f"{action.title()} a model alias (admin)",
                          openapi_extra={"requestBody": {"required": True, "content": {
                              "application/json": {"schema": {
                                  "type": "object", "required": ["alias", "reason"],
                                  "properties": {"alias": {"enum": list(ALIASES)},
                                                 "reason": {"type": "string"},
                                                 "version": {"type": "integer"},
                                                 "force": {"type": "boolean"}}}}}}},
                          responses={409: {"description": "the registry refused"},
                                     422: {"description": "invalid fields"}})

    @app.get("/console/login", response_class=HTMLResponse, tags=["console pages"])
    def login_page(request: Request, failed: int = Query(0, ge=0, le=1)):
        return page(request, "login", "Sign in", "", failed=bool(failed))

    @app.post("/console/login", tags=["console pages"], openapi_extra={"requestBody": {
        "required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": {"key": {"type": "string"}}}}}}})
    async def login(request: Request):
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("key") or [""])[0].strip()
        keys = ctx.policy.keys
        if keys is None:
            return RedirectResponse("/console", status_code=303)
        key = keys.authenticate(token) if token else None
        if key is None or not key.allows(CONSOLE):
            return RedirectResponse("/console/login?failed=1", status_code=303)
        response = RedirectResponse("/console", status_code=303)
        response.set_cookie(COOKIE, ctx.policy.sessions.issue(key.name),
                            max_age=int(ctx.policy.sessions.lifetime_s), path="/console",
                            httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        log.info("console: %s signed in", key.name)
        return response

    @app.post("/console/logout", tags=["console pages"])
    def logout():
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    @app.get("/console/static/{name}", tags=["console pages"])
    def static(name: str):
        if name not in STATIC:
            return _error(404, "not_found", f"no static file {name!r}")
        return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                            headers={"cache-control": "public, max-age=3600"})


__all__ = ["add_console_routes", "console_scope"]
