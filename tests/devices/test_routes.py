"""Push devices over HTTP: register, re-register, list, delete; the token never comes back out."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.devices.models import Device

TOKEN = "fcm-token-" + "x" * 40
# A browser's PushSubscription.toJSON() (a real P-256 point and a 16-byte secret, base64url).
P256DH = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
ENDPOINT = "https://fcm.googleapis.com/fcm/send/" + "e" * 40
SUBSCRIPTION = {
    "endpoint": ENDPOINT,
    "expirationTime": None,
    "keys": {"p256dh": P256DH, "auth": AUTH},
}


def test_register_list_delete(
    client: FlaskClient, patient_headers: dict[str, str], session: Session
) -> None:
    created = client.post(
        "/v1/devices", json={"platform": "android", "token": TOKEN}, headers=patient_headers
    )
    assert created.status_code == 201
    assert set(created.json) == {"id", "platform", "enabled", "created_at", "updated_at"}
    assert TOKEN not in created.get_data(as_text=True)
    listed = client.get("/v1/devices", headers=patient_headers)
    assert [d["id"] for d in listed.json["items"]] == [created.json["id"]]
    assert TOKEN not in listed.get_data(as_text=True)

    deleted = client.delete(f"/v1/devices/{created.json['id']}", headers=patient_headers)
    assert deleted.status_code == 204
    assert client.get("/v1/devices", headers=patient_headers).json["items"] == []
    missing = client.delete(f"/v1/devices/{created.json['id']}", headers=patient_headers)
    assert missing.status_code == 404


def test_the_same_token_again_is_the_same_device_and_is_enabled_again(
    client: FlaskClient, patient_headers: dict[str, str], session: Session, patient: User
) -> None:
    first = client.post(
        "/v1/devices", json={"platform": "android", "token": TOKEN}, headers=patient_headers
    ).json
    device = session.get(Device, uuid.UUID(first["id"]))
    assert device is not None
    device.disabled_at, device.disabled_reason = device.created_at, "invalid_token"
    session.commit()
    again = client.post(
        "/v1/devices", json={"platform": "android", "token": TOKEN}, headers=patient_headers
    )
    assert again.status_code == 200
    assert again.json["id"] == first["id"] and again.json["enabled"] is True


def test_a_token_moves_to_the_account_that_registers_it_last(
    client: FlaskClient,
    patient_headers: dict[str, str],
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
    session: Session,
) -> None:
    first = client.post(
        "/v1/devices", json={"platform": "ios", "token": TOKEN}, headers=patient_headers
    ).json
    other = make_patient()
    moved = client.post(
        "/v1/devices", json={"platform": "ios", "token": TOKEN}, headers=auth_headers(other)
    )
    assert moved.status_code == 200 and moved.json["id"] == first["id"]
    assert client.get("/v1/devices", headers=patient_headers).json["items"] == []
    owners = session.scalars(select(Device.user_id)).all()
    assert owners == [other.id]


def test_another_users_device_is_404(
    client: FlaskClient,
    patient_headers: dict[str, str],
    make_patient: Callable[..., User],
    auth_headers: Callable[[User], dict[str, str]],
) -> None:
    created = client.post(
        "/v1/devices", json={"platform": "android", "token": TOKEN}, headers=patient_headers
    ).json
    stranger = auth_headers(make_patient())
    assert client.delete(f"/v1/devices/{created['id']}", headers=stranger).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform": "windows-phone", "token": TOKEN}, "platform"),
        ({"platform": "ios"}, "token"),
        ({"platform": "ios", "token": "short"}, "token"),
        ({"platform": "ios", "token": TOKEN, "enabled": False}, "enabled"),
        ({"platform": "web", "token": TOKEN}, "subscription"),
        ({"platform": "android", "token": TOKEN, "subscription": SUBSCRIPTION}, "subscription"),
        (
            {"platform": "web", "subscription": {**SUBSCRIPTION, "keys": {"auth": AUTH}}},
            "subscription.keys.p256dh",
        ),
        (
            {
                "platform": "web",
                "subscription": {**SUBSCRIPTION, "keys": {"p256dh": P256DH, "auth": "c2hvcnQ"}},
            },
            "subscription.keys.auth",
        ),
        (
            {"platform": "web", "subscription": {**SUBSCRIPTION, "endpoint": "ftp://x.test/1"}},
            "subscription.endpoint",
        ),
    ],
)
def test_bad_input(
    client: FlaskClient, patient_headers: dict[str, str], body: dict[str, str], field: str
) -> None:
    response = client.post("/v1/devices", json=body, headers=patient_headers)
    assert response.status_code == 422
    assert field in response.json["errors"]
    assert TOKEN not in response.get_data(as_text=True)


def test_the_token_never_reaches_the_logs(
    client: FlaskClient, patient_headers: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        client.post(
            "/v1/devices", json={"platform": "ios", "token": TOKEN}, headers=patient_headers
        )
    client.post("/v1/devices", json={"platform": "nope", "token": TOKEN}, headers=patient_headers)
    out = capsys.readouterr()
    assert "device.registered" in out.out and "device.reregistered" in out.out
    assert TOKEN not in out.out + out.err


def test_a_web_push_subscription_is_registered_with_its_keys_and_never_shown(
    client: FlaskClient, patient_headers: dict[str, str], session: Session
) -> None:
    created = client.post(
        "/v1/devices",
        json={"platform": "web", "subscription": SUBSCRIPTION},
        headers=patient_headers,
    )
    assert created.status_code == 201, created.json
    text = created.get_data(as_text=True) + client.get(
        "/v1/devices", headers=patient_headers
    ).get_data(as_text=True)
    assert ENDPOINT not in text and P256DH not in text and AUTH not in text
    device = session.get(Device, uuid.UUID(created.json["id"]))
    assert device is not None
    assert (device.token, device.push_p256dh, device.push_auth) == (ENDPOINT, P256DH, AUTH)

    # the browser renewed its keys for the same endpoint: same device, new keys
    renewed_auth = "AAAAAAAAAAAAAAAAAAAAAA"
    again = client.post(
        "/v1/devices",
        json={
            "platform": "web",
            "subscription": {**SUBSCRIPTION, "keys": {"p256dh": P256DH, "auth": renewed_auth}},
        },
        headers=patient_headers,
    )
    assert again.status_code == 200 and again.json["id"] == created.json["id"]
    session.refresh(device)
    assert device.push_auth == renewed_auth


def test_a_subscription_outside_the_known_push_services_is_refused(
    client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    # The server POSTs to the endpoint: it must not be an address of the client's choosing.
    for endpoint in (
        "https://127.0.0.1:5432/x",
        "https://evil.test/push",
        "http://fcm.googleapis.com/x",
    ):
        response = client.post(
            "/v1/devices",
            json={"platform": "web", "subscription": {**SUBSCRIPTION, "endpoint": endpoint}},
            headers=patient_headers,
        )
        assert response.status_code == 422, endpoint
        assert "subscription.endpoint" in response.json["errors"]


def test_the_openapi_document_describes_the_subscription(client: FlaskClient) -> None:
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    subscription = schemas["WebPushSubscription"]
    assert set(subscription["required"]) == {"endpoint", "keys"}
    assert set(schemas["WebPushKeys"]["required"]) == {"p256dh", "auth"}
    create = schemas["DeviceCreate"]["properties"]
    assert "subscription" in create and "token" in create
