"""The dashboard's pages under ``/admin``: server-rendered (Jinja2), refreshed in parts by htmx (vendored in
``static/``), no inline script anywhere, so the pages can send a strict Content-Security-Policy.

Every page and fragment needs a session cookie of an administrator (`habitjobs admin login-link`, or a
bearer token pasted into the sign-in form). Every action is a POST form carrying the session's CSRF token,
from this server's own origin (Origin / Sec-Fetch-Site checked), and is written to the audit log.
Queue work goes through :class:`~habitjobs.queue.operations.JobOperations`, the same service as the JSON
admin API and `habitjobs jobs`.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from habitjobs.accounts import signin
from habitjobs.accounts.repository import principal_by_id
from habitjobs.api.deps import get_authenticator, get_resources
from habitjobs.dashboard import activity as activity_repo
from habitjobs.dashboard import repository as audit
from habitjobs.dashboard.sessions import AdminSessions, Session
from habitjobs.dashboard.sessions import for_settings as sessions_for
from habitjobs.errors import Forbidden, HabitjobsError, InvalidInput, Unauthorized
from habitjobs.queue.operations import STATES, JobFilter, JobOperations
from habitjobs.resources import Resources

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "habitjobs_admin"
PAGE_SIZE = 50
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/admin", include_in_schema=False)


class SignedOut(Exception):
    """No session, an expired one, or its user is gone or locked."""


@dataclass(frozen=True)
class Operator:
    user_id: uuid.UUID
    csrf: str
    cookie: str


def _sessions(resources: Resources) -> AdminSessions:
    return sessions_for(resources.producer.redis, resources.settings)


def _ops(resources: Resources) -> JobOperations:
    return JobOperations(resources.producer)


async def _operator(request: Request) -> Operator:
    resources = get_resources(request)
    cookie = request.cookies.get(COOKIE)
    session = await _sessions(resources).find(cookie)
    if session is None or cookie is None:
        raise SignedOut
    async with resources.db.transaction() as db:
        row = await principal_by_id(db, session.user_id)
    if row is None or row.locked:
        raise SignedOut
    if not row.is_admin:
        raise Forbidden("this needs an administrator")
    return Operator(session.user_id, session.csrf, cookie)


def _own_origins(request: Request) -> set[str]:
    host = request.headers.get("host", "")
    origins = {f"{request.url.scheme}://{host}"}
    public = urlsplit(get_resources(request).settings.admin_base_url)
    if public.scheme and public.netloc:
        origins.add(f"{public.scheme}://{public.netloc}")
    return origins


def _check_same_origin(request: Request) -> None:
    """Refuse a POST that another site's page sent (login CSRF included)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden("cross-site request refused")
    own = _own_origins(request)
    origin = request.headers.get("origin")
    if origin is not None:
        if origin not in own:
            raise Forbidden("cross-origin request refused")
        return
    referer = urlsplit(request.headers.get("referer", ""))
    if f"{referer.scheme}://{referer.netloc}" not in own:
        raise Forbidden("request without a same-origin Origin or Referer refused")


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def _action_form(request: Request) -> tuple[Operator, dict[str, str]]:
    operator = await _operator(request)
    _check_same_origin(request)
    form = await _form(request)
    if not hmac.compare_digest(form.get("csrf", "").encode(), operator.csrf.encode()):
        raise Forbidden("missing or wrong CSRF token: reload the page")
    return operator, form


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


async def _context(request: Request, operator: Operator | None, **values: Any) -> dict[str, Any]:
    flash = None
    if operator is not None:
        flash = await _sessions(get_resources(request)).take_flash(operator.cookie)
    return {"operator": operator, "flash": flash, "states": STATES, **values}


def _secure(request: Request) -> bool:
    return get_resources(request).settings.env not in ("dev", "test")


def _safe_back(value: str | None) -> str:
    """Only a path of this dashboard (never another site) to go back to after an action."""
    if not value or not value.startswith("/admin") or value.startswith("//") or "\\" in value:
        return "/admin"
    return value


# --- sign-in ---------------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, code: str = "") -> HTMLResponse:
    return _page(request, "login.html", await _context(request, None, code=code, error=None))


@router.post("/login")
async def login(request: Request) -> Response:
    _check_same_origin(request)
    form = await _form(request)
    resources = get_resources(request)
    sessions = _sessions(resources)
    user_id: uuid.UUID | None = None
    how = ""
    if form.get("code"):
        user_id = await sessions.redeem_login_code(form["code"].strip())
        how = "login code"
    elif form.get("token"):
        try:
            token = await get_authenticator(request).verify(form["token"].strip())
            async with resources.db.transaction() as db:
                principal = await signin.sign_in(db, token)
            user_id = principal.user_id
            how = "token"
        except Unauthorized:
            user_id = None
    if user_id is None:
        context = await _context(request, None, code="", error="That code or token does not work.")
        return _page(request, "login.html", context, status_code=401)
    async with resources.db.transaction() as db:
        row = await principal_by_id(db, user_id)
        if row is None or row.locked or not row.is_admin:
            await audit.record(
                db, None, "sign-in refused", f"user {user_id}", f"not an administrator ({how})"
            )
            allowed = False
        else:
            await audit.record(db, user_id, "sign in", "dashboard", f"signed in with a {how}")
            allowed = True
    if not allowed:
        context = await _context(request, None, code="", error="This account is not an administrator.")
        return _page(request, "login.html", context, status_code=403)
    cookie, _session = await sessions.open(user_id)
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=resources.settings.admin_session_ttl_s,
        path="/admin",
        httponly=True,
        secure=_secure(request),
        samesite="strict",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    operator, _form_values = await _action_form(request)
    resources = get_resources(request)
    await _sessions(resources).close(operator.cookie)
    async with resources.db.transaction() as db:
        await audit.record(db, operator.user_id, "sign out", "dashboard", "signed out")
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(COOKIE, path="/admin")
    return response


# --- pages -----------------------------------------------------------------------------------------


@router.get("")
async def overview(request: Request) -> HTMLResponse:
    operator = await _operator(request)
    health = await _ops(get_resources(request)).overview()
    return _page(request, "overview.html", await _context(request, operator, queues=health))


@router.get("/fragments/overview")
async def overview_fragment(request: Request) -> HTMLResponse:
    await _operator(request)
    health = await _ops(get_resources(request)).overview()
    return _page(request, "_overview.html", {"queues": health})


def _parse_time(value: str, field: str) -> int | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field} is not a date and time (YYYY-MM-DDTHH:MM)", field=field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def _search(request: Request, queue: str, state: str) -> dict[str, Any]:
    q = request.query_params
    try:
        page = max(0, int(q.get("page", "0") or 0))
    except ValueError:
        raise InvalidInput("page must be a number", field="page") from None
    where = JobFilter(
        name=q.get("name") or None,
        text=(q.get("text") or None),
        since_ms=_parse_time(q.get("since", ""), "since"),
        until_ms=_parse_time(q.get("until", ""), "until"),
    )
    result = await _ops(get_resources(request)).search_jobs(
        queue, state, where, page=page, page_size=PAGE_SIZE
    )
    filters = {k: q.get(k, "") for k in ("name", "text", "since", "until")}
    base = {k: v for k, v in filters.items() if v}
    return {
        "result": result,
        "filters": filters,
        "queue": queue,
        "state": state,
        "prev_url": f"?{urlencode({**base, 'page': page - 1})}" if page > 0 else None,
        "next_url": f"?{urlencode({**base, 'page': page + 1})}" if result.more else None,
        "rows_url": f"/admin/fragments/jobs/{queue}/{state}?{urlencode({**base, 'page': page})}",
        "live": page == 0,
        "job_names": sorted(s.name for s in get_resources(request).producer.registry.for_queue(queue)),
    }


@router.get("/jobs/{queue}/{state}")
async def jobs_page(request: Request, queue: str, state: str) -> HTMLResponse:
    operator = await _operator(request)
    found = await _search(request, queue, state)
    return _page(request, "jobs.html", await _context(request, operator, **found))


@router.get("/fragments/jobs/{queue}/{state}")
async def jobs_fragment(request: Request, queue: str, state: str) -> HTMLResponse:
    await _operator(request)
    return _page(request, "_rows.html", await _search(request, queue, state))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@router.get("/job/{queue}/{job_id}")
async def job_page(request: Request, queue: str, job_id: str) -> HTMLResponse:
    operator = await _operator(request)
    job = await _ops(get_resources(request)).job(queue, job_id)
    context = await _context(request, operator, job=job, pretty=_pretty, back=request.url.path)
    return _page(request, "job.html", context)


@router.get("/fragments/job/{queue}/{job_id}")
async def job_fragment(request: Request, queue: str, job_id: str) -> HTMLResponse:
    await _operator(request)
    job = await _ops(get_resources(request)).job(queue, job_id)
    return _page(request, "_job_state.html", {"job": job, "pretty": _pretty})


@router.get("/audit")
async def audit_page(request: Request) -> HTMLResponse:
    operator = await _operator(request)
    async with get_resources(request).db.transaction() as db:
        entries = await audit.recent(db)
    return _page(request, "audit.html", await _context(request, operator, entries=entries))


@router.get("/activity")
async def activity_page(request: Request) -> HTMLResponse:
    operator = await _operator(request)
    user = request.query_params.get("user", "").strip()
    user_id: uuid.UUID | None = None
    if user:
        try:
            user_id = uuid.UUID(user)
        except ValueError:
            raise InvalidInput("user must be a user id (UUID)", field="user") from None
    resources = get_resources(request)
    async with resources.db.transaction() as db:
        report = await activity_repo.report(db, user_id=user_id)
    return _page(request, "activity.html", await _context(request, operator, report=report, user=user))


# --- actions ---------------------------------------------------------------------------------------


async def _do(ops: JobOperations, form: dict[str, str]) -> tuple[str, str, str]:
    """Carry out one action: (what, on what, outcome)."""
    action, queue, job_id = form.get("action", ""), form.get("queue", ""), form.get("job_id", "")
    if action == "retry":
        job = await ops.retry(queue, job_id)
        return action, f"{queue}/{job_id}", f"job {job_id} retried (now {job.state})"
    if action == "promote":
        job = await ops.promote(queue, job_id)
        return action, f"{queue}/{job_id}", f"job {job_id} promoted (now {job.state})"
    if action == "remove":
        await ops.remove(queue, job_id)
        return action, f"{queue}/{job_id}", f"job {job_id} removed"
    if action == "retry-failed":
        name = form.get("name", "").strip() or None
        count = await ops.retry_failed(queue, name=name)
        which = f" named {name}" if name else ""
        return action, queue + (f" name={name}" if name else ""), f"{count} failed jobs{which} retried"
    if action == "pause":
        await ops.pause(queue)
        return action, queue, f"queue {queue} paused"
    if action == "resume":
        await ops.resume(queue)
        return action, queue, f"queue {queue} resumed"
    raise InvalidInput(f"unknown action {action!r}", field="action")


@router.post("/actions")
async def act(request: Request) -> Response:
    operator, form = await _action_form(request)
    resources = get_resources(request)
    try:
        what, target, outcome = await _do(_ops(resources), form)
        message = outcome
    except HabitjobsError as exc:
        what, target = form.get("action", "?"), f"{form.get('queue', '')}/{form.get('job_id', '')}".strip("/")
        outcome = f"refused: {exc.message}"
        message = f"Not done: {exc.message}"
    async with resources.db.transaction() as db:
        await audit.record(db, operator.user_id, what, target, outcome)
    await _sessions(resources).flash(operator.cookie, message)
    return RedirectResponse(_safe_back(form.get("back")), status_code=303)


# --- wiring ----------------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Mount the dashboard: static files, pages, and what a signed-out visitor sees."""
    app.mount("/admin/static", StaticFiles(directory=HERE / "static"), name="admin-static")
    app.include_router(router)

    @app.exception_handler(SignedOut)
    async def _signed_out(request: Request, _exc: SignedOut) -> Response:
        if request.method == "GET" and "hx-request" not in request.headers:
            return RedirectResponse("/admin/login", status_code=303)
        response = HTMLResponse("Sign in first: /admin/login", status_code=401)
        response.headers.update(SECURITY_HEADERS)
        return response


__all__ = ["Session", "install"]
