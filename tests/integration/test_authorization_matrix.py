"""The authorization matrix, built from the app's own route table.

Every route of the app is called as {anonymous, the owner of real data, another user, an admin}, with
ids the owner created first. Anonymous callers get 401 (except on public routes); another user — and an
admin on user routes, where an admin is just a user — gets 404 for an id that is not theirs, and the
owner's data reads exactly the same before and after; admin-only routes answer 403 to users. Every
answer is one of the statuses the rule allows, never a 5xx.

The rules are keyed by (method, path). A route added to the app without a rule here fails
:func:`test_every_route_has_a_rule`, and so does a rule for a route that no longer exists.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from habitjobs.api.app import create_app
from habitjobs.config import Settings
from habitjobs.dashboard.routes import COOKIE
from habitjobs.dashboard.sessions import AdminSessions
from habitjobs.dashboard.sessions import for_settings as sessions_for
from habitjobs.queue.names import DEFAULT
from habitjobs.resources import Resources
from tests.support.sync import body, ts
from tests.support.users import ApiUser

MakeUser = Callable[..., Awaitable[ApiUser]]
ORIGIN = "http://api.test"


@dataclass(frozen=True)
class World:
    """The owner's real data, created through the API before any route is tried."""

    routine_id: str
    habit_id: str
    reminder_id: str
    device_id: str
    export_id: str
    export_job_id: str
    batch_id: str
    identity_id: str


Call = Callable[[World], tuple[str, Any]]


@dataclass(frozen=True)
class Rule:
    # public: no token needed; user: any signed-in user; admin: users with the admin flag only;
    # dashboard: the HTML pages under /admin, for administrators signed in with a session cookie
    # (forms instead of JSON); dashboard-login: the dashboard's sign-in form.
    access: Literal["public", "user", "admin", "dashboard", "dashboard-login"]
    call: Call
    # Statuses the owner (for admin routes: the admin) may get — the route works with these ids.
    owner: frozenset[int]
    # Statuses another user (and an admin on user routes) may get with the owner's ids.
    other: frozenset[int] = frozenset({404})


def _s(*codes: int) -> frozenset[int]:
    return frozenset(codes)


def _get(url: str) -> Call:
    return lambda w: (url.format(**w.__dict__), None)


def _with(url: str, payload: Callable[[World], Any]) -> Call:
    return lambda w: (url.format(**w.__dict__), payload(w))


def _device_body(_w: World) -> dict[str, Any]:
    return {"platform": "android", "push_token": f"tok-{uuid.uuid4().hex}"}


def _push_body(w: World) -> dict[str, Any]:
    """An upload reusing the owner's batch id (for anyone else: a batch they cannot see)."""
    mutation = {
        "mutation_id": 1,
        "entity": "habit",
        "op": "upsert",
        "id": str(uuid.uuid4()),
        "client_updated_at": ts(0),
        "data": {"name": "Other"},
    }
    return body("phone-x", [mutation], uuid.UUID(w.batch_id))


OK = _s(200)
OWN_ONLY = _s(200)  # a route about the caller only: another user gets their own (empty) data

RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): Rule("public", _get("/healthz"), _s(200), _s(200)),
    ("GET", "/readyz"): Rule("public", _get("/readyz"), _s(200), _s(200)),
    ("GET", "/openapi.json"): Rule("public", _get("/openapi.json"), _s(200), _s(200)),
    ("GET", "/docs"): Rule("public", _get("/docs"), _s(200), _s(200)),
    ("GET", "/docs/oauth2-redirect"): Rule("public", _get("/docs/oauth2-redirect"), _s(200), _s(200)),
    ("GET", "/redoc"): Rule("public", _get("/redoc"), _s(200), _s(200)),
    # Prometheus scrapes it without a token (no user data in it: counts by route template and status).
    ("GET", "/metrics"): Rule("public", _get("/metrics"), _s(200), _s(200)),
    # --- accounts
    ("GET", "/v1/me"): Rule("user", _get("/v1/me"), OK, OWN_ONLY),
    ("PATCH", "/v1/me"): Rule("user", _with("/v1/me", lambda w: {"display_name": "Changed"}), OK, OK),
    ("GET", "/v1/devices"): Rule("user", _get("/v1/devices"), OK, OWN_ONLY),
    ("PUT", "/v1/devices/{device_id}"): Rule("user", _with("/v1/devices/{device_id}", _device_body), OK),
    ("DELETE", "/v1/devices/{device_id}"): Rule("user", _get("/v1/devices/{device_id}"), _s(204)),
    ("POST", "/v1/me/exports"): Rule("user", _get("/v1/me/exports"), _s(200, 202), _s(202)),
    ("GET", "/v1/me/exports/{export_id}"): Rule("user", _get("/v1/me/exports/{export_id}"), OK),
    ("GET", "/v1/me/identities"): Rule("user", _get("/v1/me/identities"), OK, OWN_ONLY),
    # A token of another identity provider is needed to link one: a malformed one is refused (401).
    ("POST", "/v1/me/identities"): Rule(
        "user", _with("/v1/me/identities", lambda w: {"token": "not-a-token"}), _s(401), _s(401)
    ),
    # The owner's only identity cannot be removed (409: it is theirs, so saying so leaks nothing).
    ("DELETE", "/v1/me/identities/{identity_id}"): Rule(
        "user", _get("/v1/me/identities/{identity_id}"), _s(204, 409)
    ),
    ("DELETE", "/v1/me"): Rule("user", _get("/v1/me"), _s(202), _s(202)),
    ("GET", "/v1/me/deletion"): Rule("user", _get("/v1/me/deletion"), _s(404), _s(404)),
    ("DELETE", "/v1/me/deletion"): Rule("user", _get("/v1/me/deletion"), _s(404), _s(404)),
    # --- admin
    ("GET", "/admin/queues"): Rule("admin", _get("/admin/queues"), OK),
    ("GET", "/admin/queues/{queue}/jobs"): Rule("admin", _get(f"/admin/queues/{DEFAULT}/jobs"), OK),
    ("GET", "/admin/queues/{queue}/jobs/{job_id}"): Rule(
        "admin", _get(f"/admin/queues/{DEFAULT}/jobs/{{export_job_id}}"), _s(200, 404)
    ),
    ("POST", "/admin/queues/{queue}/jobs/{job_id}/retry"): Rule(
        "admin", _get(f"/admin/queues/{DEFAULT}/jobs/{{export_job_id}}/retry"), _s(404, 409)
    ),
    ("POST", "/admin/queues/{queue}/retry-failed"): Rule(
        "admin", _get(f"/admin/queues/{DEFAULT}/retry-failed"), OK
    ),
    ("POST", "/admin/queues/{queue}/jobs/{job_id}/promote"): Rule(
        "admin", _get(f"/admin/queues/{DEFAULT}/jobs/{{export_job_id}}/promote"), _s(404, 409)
    ),
    ("DELETE", "/admin/queues/{queue}/jobs/{job_id}"): Rule(
        "admin", _get(f"/admin/queues/{DEFAULT}/jobs/no-such-job"), _s(204, 404)
    ),
    ("POST", "/admin/queues/{queue}/pause"): Rule(
        "admin", _get("/admin/queues/no-such-queue/pause"), _s(204, 404)
    ),
    ("POST", "/admin/queues/{queue}/resume"): Rule(
        "admin", _get("/admin/queues/no-such-queue/resume"), _s(204, 404)
    ),
    # --- statistics
    ("GET", "/v1/stats/daily"): Rule("user", _get("/v1/stats/daily?from=2026-03-01&to=2026-03-07"), OK, OK),
    ("GET", "/v1/stats/weekly"): Rule("user", _get("/v1/stats/weekly?from=2026-03-02&to=2026-03-30"), OK, OK),
    ("GET", "/v1/habits/{habit_id}/streak"): Rule("user", _get("/v1/habits/{habit_id}/streak"), OK),
    # --- routines and habits
    ("GET", "/v1/routines"): Rule("user", _get("/v1/routines"), OK, OWN_ONLY),
    # Creating with the owner's id: the owner is told it exists (409); anyone else gets 404.
    ("POST", "/v1/routines"): Rule(
        "user", _with("/v1/routines", lambda w: {"id": w.routine_id, "kind": "custom", "name": "X"}), _s(409)
    ),
    ("GET", "/v1/routines/{routine_id}"): Rule("user", _get("/v1/routines/{routine_id}"), OK),
    ("PATCH", "/v1/routines/{routine_id}"): Rule(
        "user", _with("/v1/routines/{routine_id}", lambda w: {"name": "Taken"}), OK
    ),
    ("DELETE", "/v1/routines/{routine_id}"): Rule("user", _get("/v1/routines/{routine_id}"), _s(204)),
    ("GET", "/v1/habits"): Rule("user", _get("/v1/habits"), OK, OWN_ONLY),
    ("POST", "/v1/habits"): Rule(
        "user", _with("/v1/habits", lambda w: {"id": w.habit_id, "name": "X"}), _s(409)
    ),
    ("GET", "/v1/habits/{habit_id}"): Rule("user", _get("/v1/habits/{habit_id}"), OK),
    ("PATCH", "/v1/habits/{habit_id}"): Rule(
        "user", _with("/v1/habits/{habit_id}", lambda w: {"name": "Taken", "archived": True}), OK
    ),
    ("DELETE", "/v1/habits/{habit_id}"): Rule("user", _get("/v1/habits/{habit_id}"), _s(204)),
    # --- reminders
    ("GET", "/v1/reminders"): Rule("user", _get("/v1/reminders"), OK, OWN_ONLY),
    ("POST", "/v1/reminders"): Rule(
        "user",
        _with(
            "/v1/reminders", lambda w: {"id": w.reminder_id, "kind": "morning_routine", "local_time": "07:00"}
        ),
        _s(409),
    ),
    ("GET", "/v1/reminders/{reminder_id}"): Rule("user", _get("/v1/reminders/{reminder_id}"), OK),
    ("PATCH", "/v1/reminders/{reminder_id}"): Rule(
        "user", _with("/v1/reminders/{reminder_id}", lambda w: {"enabled": False}), OK
    ),
    ("DELETE", "/v1/reminders/{reminder_id}"): Rule("user", _get("/v1/reminders/{reminder_id}"), _s(204)),
    # --- sync and jobs
    # The owner re-sending their batch id gets the stored batch (200).
    ("POST", "/v1/sync/push"): Rule("user", _with("/v1/sync/push", _push_body), _s(200)),
    ("GET", "/v1/sync/batches/{batch_id}"): Rule("user", _get("/v1/sync/batches/{batch_id}"), OK),
    ("GET", "/v1/sync/pull"): Rule("user", _get("/v1/sync/pull"), OK, OWN_ONLY),
    ("GET", "/v1/jobs/{job_id}"): Rule("user", _get("/v1/jobs/{export_job_id}"), OK),
    # --- the dashboard
    ("GET", "/admin/login"): Rule("public", _get("/admin/login"), OK, OK),
    ("POST", "/admin/login"): Rule("dashboard-login", _get("/admin/login"), _s(303)),
    ("POST", "/admin/logout"): Rule("dashboard", _with("/admin/logout", lambda w: {"csrf": ""}), _s(303)),
    ("GET", "/admin"): Rule("dashboard", _get("/admin"), OK),
    ("GET", "/admin/fragments/overview"): Rule("dashboard", _get("/admin/fragments/overview"), OK),
    ("GET", "/admin/workers"): Rule("admin", _get("/admin/workers"), OK),
    ("GET", "/admin/audit"): Rule("dashboard", _get("/admin/audit"), OK),
    ("GET", "/admin/activity"): Rule("dashboard", _get("/admin/activity"), OK),
    ("GET", "/admin/jobs/{queue}/{state}"): Rule("dashboard", _get(f"/admin/jobs/{DEFAULT}/failed"), OK),
    ("GET", "/admin/fragments/jobs/{queue}/{state}"): Rule(
        "dashboard", _get(f"/admin/fragments/jobs/{DEFAULT}/failed"), OK
    ),
    ("GET", "/admin/job/{queue}/{job_id}"): Rule(
        "dashboard", _get(f"/admin/job/{DEFAULT}/{{export_job_id}}"), _s(200, 404)
    ),
    ("GET", "/admin/fragments/job/{queue}/{job_id}"): Rule(
        "dashboard", _get(f"/admin/fragments/job/{DEFAULT}/{{export_job_id}}"), _s(200, 404)
    ),
    ("POST", "/admin/actions"): Rule(
        "dashboard",
        _with("/admin/actions", lambda w: {"csrf": "", "action": "resume", "queue": "no-such-queue"}),
        _s(303),
    ),
}


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    # The routes as the app serves them: included routers flattened, prefixes applied.
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method != "HEAD" and route.path is not None:
                found.add((method, route.path))
    return found


def test_every_route_has_a_rule(settings: Settings) -> None:
    routes = _routes(create_app(settings))
    assert routes - RULES.keys() == set(), "routes without a rule in the authorization matrix"
    assert RULES.keys() - routes == set(), "rules for routes the app does not have"


async def _world(client: httpx.AsyncClient, owner: ApiUser) -> World:
    h = owner.headers

    async def created(method: str, url: str, payload: Any, status: int) -> dict[str, Any]:
        answer = await client.request(method, url, json=payload, headers=h)
        assert answer.status_code == status, answer.text
        result: dict[str, Any] = answer.json()
        return result

    routine = await created("POST", "/v1/routines", {"kind": "morning", "name": "Owner routine"}, 201)
    habit = await created("POST", "/v1/habits", {"name": "Owner habit", "routine_id": routine["id"]}, 201)
    reminder = await created(
        "POST", "/v1/reminders", {"kind": "habit", "habit_id": habit["id"], "local_time": "07:00"}, 201
    )
    device_id = str(uuid.uuid4())
    await created(
        "PUT", f"/v1/devices/{device_id}", {"platform": "ios", "push_token": f"own-{uuid.uuid4().hex}"}, 200
    )
    export = await created("POST", "/v1/me/exports", None, 202)
    mutation = {
        "mutation_id": 1,
        "entity": "habit",
        "op": "upsert",
        "id": str(uuid.uuid4()),
        "client_updated_at": ts(0),
        "data": {"name": "Synced"},
    }
    batch = await created("POST", "/v1/sync/push", body("owner-phone", [mutation]), 202)
    identities = (await client.get("/v1/me/identities", headers=h)).json()
    return World(
        routine_id=routine["id"],
        habit_id=habit["id"],
        reminder_id=reminder["id"],
        device_id=device_id,
        export_id=export["export_id"],
        export_job_id=export["job_id"],
        batch_id=batch["batch_id"],
        identity_id=identities[0]["id"],
    )


async def _snapshot(client: httpx.AsyncClient, owner: ApiUser, w: World) -> list[tuple[int, str]]:
    """Everything the owner can read about their data, as they read it."""
    urls = [
        "/v1/me",
        "/v1/devices",
        "/v1/me/identities",
        "/v1/routines",
        "/v1/habits",
        "/v1/reminders",
        f"/v1/me/exports/{w.export_id}",
        f"/v1/sync/batches/{w.batch_id}",
        "/v1/me/deletion",
        f"/v1/jobs/{w.export_job_id}",
    ]
    out = []
    for url in urls:
        answer = await client.get(url, headers=owner.headers)
        assert answer.status_code < 500, answer.text
        out.append((answer.status_code, answer.text))
    return out


def _owner_markers(w: World) -> list[str]:
    return [w.routine_id, w.habit_id, w.reminder_id, w.device_id, w.export_id, w.identity_id, "Owner habit"]


async def _matrix(
    client: httpx.AsyncClient, sessions: AdminSessions, make_user: MakeUser, key: tuple[str, str], rule: Rule
) -> list[str]:
    """Try one route as every kind of caller; the problems found, in words."""
    problems: list[str] = []
    owner = await make_user()
    other = await make_user()
    admin = await make_user(admin=True)
    w = await _world(client, owner)
    method = key[0]
    url, payload = rule.call(w)

    async def call(who: ApiUser | None) -> httpx.Response:
        headers = who.headers if who is not None else {}
        client.cookies.clear()
        return await client.request(method, url, json=payload, headers=headers)

    def expect(who: str, answer: httpx.Response, allowed: frozenset[int]) -> None:
        if answer.status_code not in allowed:
            problems.append(f"{method} {url} as {who}: {answer.status_code} not in {sorted(allowed)}")

    if rule.access in ("dashboard", "dashboard-login"):
        return problems + await _dashboard(client, sessions, key, rule, w, (owner, other), admin)
    anonymous = await call(None)
    expect("anonymous", anonymous, rule.owner if rule.access == "public" else _s(401))
    before = await _snapshot(client, owner, w)
    if rule.access == "admin":
        expect("owner", await call(owner), _s(403))
        expect("another user", await call(other), _s(403))
        expect("admin", await call(admin), rule.owner)
    elif rule.access == "user":
        for name, who in (("another user", other), ("admin", admin)):
            answer = await call(who)
            expect(name, answer, rule.other)
            sent = url + json.dumps(payload)
            leaked = [m for m in _owner_markers(w) if m in answer.text and m not in sent]
            if leaked:
                problems.append(f"{method} {url} as {name}: the answer shows the owner's {leaked}")
        after = await _snapshot(client, owner, w)
        if after != before:
            changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
            problems.append(f"{method} {url} by others changed the owner's data: {changed}")
        expect("owner", await call(owner), rule.owner)
    else:
        expect("owner", await call(owner), rule.owner)
    return problems


async def _dashboard(
    client: httpx.AsyncClient,
    sessions: AdminSessions,
    key: tuple[str, str],
    rule: Rule,
    w: World,
    users: tuple[ApiUser, ApiUser],
    admin: ApiUser,
) -> list[str]:
    """The dashboard's pages take a session cookie, not a bearer token, and forms from this origin.

    Anonymous callers (and users sending only their bearer token) are sent to the sign-in page (303)
    or, for a form post, refused (401/403); a user who holds a session without being an administrator
    (say, one demoted since) gets 403; an administrator's session gets the rule's statuses. The sign-in
    form itself refuses users' tokens (403) and takes an administrator's (303).
    """
    problems: list[str] = []
    method = key[0]
    url, payload = rule.call(w)
    signed_out = _s(303) if method == "GET" else _s(401, 403)

    async def call(
        bearer: ApiUser | None, session_of: ApiUser | None, form: dict[str, str] | None
    ) -> httpx.Response:
        client.cookies.clear()
        headers = {"Origin": ORIGIN, **(bearer.headers if bearer is not None else {})}
        data = dict(form or payload or {})
        if session_of is not None:
            cookie, session = await sessions.open(session_of.id)
            client.cookies.set(COOKIE, cookie, domain="api.test", path="/admin")
            if "csrf" in data:
                data["csrf"] = session.csrf
        if method == "GET":
            return await client.get(url, headers=headers)
        return await client.post(url, data=data, headers=headers)

    def expect(who: str, answer: httpx.Response, allowed: frozenset[int]) -> None:
        if answer.status_code not in allowed:
            problems.append(f"{method} {url} as {who}: {answer.status_code} not in {sorted(allowed)}")

    if rule.access == "dashboard-login":
        expect("anonymous", await call(None, None, {}), _s(401))
        for name, user in zip(("owner", "another user"), users, strict=True):
            expect(name, await call(None, None, {"token": user.token}), _s(403))
        expect("admin", await call(None, None, {"token": admin.token}), rule.owner)
        return problems
    expect("anonymous", await call(None, None, None), signed_out)
    for name, user in zip(("owner", "another user"), users, strict=True):
        expect(f"{name} with a bearer token", await call(user, None, None), signed_out)
        expect(f"{name} with a session", await call(None, user, None), _s(403))
    expect("admin with a bearer token", await call(admin, None, None), signed_out)
    expect("admin", await call(None, admin, None), rule.owner)
    client.cookies.clear()
    return problems


async def test_authorization_matrix(
    settings: Settings, resources: Resources, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    app = create_app(settings, resources=resources)
    sessions = sessions_for(resources.producer.redis, resources.settings)
    problems: list[str] = []
    for key in sorted(_routes(app)):
        rule = RULES.get(key)
        assert rule is not None, f"{key} has no rule"
        problems += await _matrix(client, sessions, make_user, key, rule)
    assert problems == []
