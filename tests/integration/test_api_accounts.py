"""The current user and their devices, over HTTP against real PostgreSQL."""

import uuid

import httpx

from habitjobs.accounts.auth import mint_token
from habitjobs.config import Settings
from habitjobs.resources import Resources
from tests.support.users import MakeUser


async def test_me_requires_a_valid_token(client: httpx.AsyncClient, resources: Resources) -> None:
    missing = await client.get("/v1/me")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthorized"

    garbage = await client.get("/v1/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert garbage.status_code == 401

    expired = mint_token(resources.settings, uuid.uuid4(), now=resources.clock.now(), ttl_s=-10)
    answer = await client.get("/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401
    assert "expired" in answer.json()["error"]["message"]


async def test_token_of_a_user_that_does_not_exist_is_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    token = mint_token(resources.settings, uuid.uuid4(), now=resources.clock.now())
    answer = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401


async def test_token_signed_with_another_key_is_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    other = Settings(**{**resources.settings.model_dump(), "jwt_secret": "y" * 40})
    token = mint_token(other, uuid.uuid4(), now=resources.clock.now())
    assert (await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401


async def test_get_and_patch_me(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user("Alice@Example.com")
    me = (await client.get("/v1/me", headers=user.headers)).json()
    assert me["id"] == str(user.id)
    assert me["timezone"] == "UTC"

    patched = await client.patch(
        "/v1/me",
        headers=user.headers,
        json={"timezone": "Asia/Kathmandu", "display_name": "Alice", "week_start": 6},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["timezone"] == "Asia/Kathmandu"
    assert patched.json()["week_start"] == 6
    assert (await client.get("/v1/me", headers=user.headers)).json()["display_name"] == "Alice"


async def test_unknown_timezone_is_a_422_naming_the_field(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    for zone in ("Mars/Olympus", "localtime", "../../etc/passwd", "EST5EDT "):
        answer = await client.patch("/v1/me", headers=user.headers, json={"timezone": zone})
        assert answer.status_code == 422, zone
        assert answer.json()["error"]["field"] == "timezone"


async def test_malformed_json_and_wrong_types_are_422(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    headers = {**user.headers, "content-type": "application/json"}
    broken = await client.patch("/v1/me", headers=headers, content=b'{"timezone": ')
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "malformed_json"

    wrong_type = await client.patch("/v1/me", headers=user.headers, json={"week_start": "monday"})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["error"]["field"] == "week_start"

    unknown_field = await client.patch("/v1/me", headers=user.headers, json={"is_admin": True})
    assert unknown_field.status_code == 422
    assert unknown_field.json()["error"]["field"] == "is_admin"

    not_an_object = await client.patch("/v1/me", headers=user.headers, json=[1, 2])
    assert not_an_object.status_code == 422


async def test_too_large_body_is_413(
    client: httpx.AsyncClient, make_user: MakeUser, resources: Resources
) -> None:
    user = await make_user()
    big = b'{"display_name": "' + b"x" * (resources.settings.api_max_body_bytes + 10) + b'"}'
    answer = await client.patch(
        "/v1/me", headers={**user.headers, "content-type": "application/json"}, content=big
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


async def test_device_registration_is_idempotent_and_private(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    alice, bob = await make_user(), await make_user()
    device_id = uuid.uuid4()
    body = {"platform": "ios", "push_token": "a" * 64, "apns_env": "sandbox"}
    first = await client.put(f"/v1/devices/{device_id}", headers=alice.headers, json=body)
    again = await client.put(f"/v1/devices/{device_id}", headers=alice.headers, json=body)
    assert first.status_code == again.status_code == 200
    assert first.json()["provider"] == "apns"
    assert first.json()["push_token_tail"] == "a" * 6
    assert len((await client.get("/v1/devices", headers=alice.headers)).json()) == 1
    assert (await client.get("/v1/devices", headers=bob.headers)).json() == []
    assert (await client.delete(f"/v1/devices/{device_id}", headers=bob.headers)).status_code == 404

    assert (await client.delete(f"/v1/devices/{device_id}", headers=alice.headers)).status_code == 204
    [device] = (await client.get("/v1/devices", headers=alice.headers)).json()
    assert device["push_enabled"] is False
    assert device["invalid_reason"] == "unregistered"


async def test_a_token_that_moves_to_another_installation_is_disabled_on_the_old_one(
    client: httpx.AsyncClient,
    make_user: MakeUser,
) -> None:
    alice, bob = await make_user(), await make_user()
    token = {"platform": "android", "push_token": "fcm-token-123456"}
    old, new = uuid.uuid4(), uuid.uuid4()
    assert (await client.put(f"/v1/devices/{old}", headers=alice.headers, json=token)).status_code == 200
    assert (await client.put(f"/v1/devices/{new}", headers=bob.headers, json=token)).status_code == 200
    [alice_device] = (await client.get("/v1/devices", headers=alice.headers)).json()
    assert alice_device["push_enabled"] is False
    assert alice_device["invalid_reason"] == "token_moved"
    [bob_device] = (await client.get("/v1/devices", headers=bob.headers)).json()
    assert bob_device["push_enabled"] is True


async def test_device_validation(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    url = f"/v1/devices/{uuid.uuid4()}"
    bad_platform = await client.put(
        url, headers=user.headers, json={"platform": "windows", "push_token": "x" * 20}
    )
    assert bad_platform.status_code == 422
    assert bad_platform.json()["error"]["field"] == "platform"
    apns_on_android = await client.put(
        url, headers=user.headers, json={"platform": "android", "provider": "apns", "push_token": "x" * 20}
    )
    assert apns_on_android.status_code == 422
    not_a_uuid = await client.put(
        "/v1/devices/123", headers=user.headers, json={"platform": "ios", "push_token": "x" * 20}
    )
    assert not_a_uuid.status_code == 422
