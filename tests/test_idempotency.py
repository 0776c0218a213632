"""Idempotency-Key on every POST (contract: Conventions; docs/offline-sync.md)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api import idempotency
from api.auth import services as auth_services
from api.auth.models import AuthSession
from api.checkins import services as checkin_services
from api.checkins.models import Checkin
from api.idempotency import IdempotencyKey, KeyInFlight, KeyReused
from api.instruments.definitions import SOWS
from api.security import issue_access_token

Headers = dict[str, str]


def checkin_body(**overrides: Any) -> dict[str, Any]:
    recorded = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body = {
        "recorded_at": recorded,
        "instrument": "sows",
        "answers": {i.key: 1 for i in SOWS.items},
    }
    body.update(overrides)
    return body


def keyed(headers: Headers, key: str) -> Headers:
    return {**headers, "Idempotency-Key": key}


def count(session: Session, model: Any) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_repeat_replays_the_first_answer(
    client: FlaskClient, patient_headers: Headers, session: Session
) -> None:
    body = checkin_body(note="first")
    first = client.post("/v1/checkins", json=body, headers=keyed(patient_headers, "k-1"))
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    # Same JSON with other key order and spacing is the same request.
    reordered = '{"note": "first", ' + str(body).replace("'", '"')[1:].replace(
        '"note": "first", ', ""
    )
    again = client.post(
        "/v1/checkins",
        data=reordered,
        content_type="application/json",
        headers=keyed(patient_headers, "k-1"),
    )
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert again.json == first.json
    assert again.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert count(session, Checkin) == 1


def test_same_key_other_request_is_422(client: FlaskClient, patient_headers: Headers) -> None:
    headers = keyed(patient_headers, "k-2")
    assert client.post("/v1/checkins", json=checkin_body(), headers=headers).status_code == 201
    other = client.post("/v1/checkins", json=checkin_body(note="changed"), headers=headers)
    assert other.status_code == 422
    assert other.headers["Content-Type"] == "application/problem+json"
    assert "Idempotency-Key" in other.json["errors"]
    assert other.json["type"].endswith("idempotency-key-reused")
    # Another endpoint with the same key is another request, too.
    elsewhere = client.post("/v1/auth/logout", json={"refresh_token": "x"}, headers=headers)
    assert elsewhere.status_code == 422


def test_keys_belong_to_one_principal(
    client: FlaskClient, patient_headers: Headers, make_patient: Any, auth_headers: Any,
    session: Session,
) -> None:  # fmt: skip
    other = auth_headers(make_patient())
    body = checkin_body()
    mine = client.post("/v1/checkins", json=body, headers=keyed(patient_headers, "shared"))
    theirs = client.post("/v1/checkins", json=body, headers=keyed(other, "shared"))
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json["id"] != theirs.json["id"]
    assert "Idempotent-Replayed" not in theirs.headers
    assert count(session, IdempotencyKey) == 2


def test_final_4xx_are_replayed_with_this_requests_id(
    client: FlaskClient, patient_headers: Headers
) -> None:
    headers = keyed(patient_headers, "k-3")
    bad = checkin_body(craving=42)
    first = client.post("/v1/checkins", json=bad, headers=headers)
    again = client.post("/v1/checkins", json=bad, headers=headers)
    assert (first.status_code, again.status_code) == (422, 422)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["errors"] == first.json["errors"]
    assert again.json["request_id"] == again.headers["X-Request-ID"] != first.json["request_id"]


@pytest.fixture
def clinician_headers(make_clinician: Any, auth_headers: Any) -> Headers:
    return auth_headers(make_clinician())


def test_answers_that_can_change_are_not_stored(
    client: FlaskClient, patient_headers: Headers, clinician_headers: Headers,
    session: Session, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # 403: the role may change; the row is released, nothing is kept.
    staff = keyed(clinician_headers, "k-4")
    assert client.post("/v1/checkins", json=checkin_body(), headers=staff).status_code == 403
    assert count(session, IdempotencyKey) == 0
    # 401: a retry after signing in again must run.
    anonymous = client.post("/v1/checkins", json=checkin_body(), headers={"Idempotency-Key": "k"})
    assert anonymous.status_code == 401
    assert count(session, IdempotencyKey) == 0

    # A 5xx is never stored: the retry runs and succeeds.
    real = checkin_services.create_checkin
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(checkin_services, "create_checkin", flaky)
    headers = keyed(patient_headers, "k-5")
    body = checkin_body()
    assert client.post("/v1/checkins", json=body, headers=headers).status_code == 500
    assert count(session, IdempotencyKey) == 0
    retry = client.post("/v1/checkins", json=body, headers=headers)
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers
    assert count(session, Checkin) == 1


def _claim_as(app: Flask, path: str, body: dict[str, Any], headers: Headers, **kw: Any) -> Any:
    """Claim the key the way the HTTP layer would for this request (same principal and hash)."""
    with app.test_request_context(path, method="POST", json=body, headers=headers):
        principal, user_id = idempotency._principal()
        request_hash = idempotency._request_hash()
        # _principal read the login on the request's session; end it first, as _before does
        # (in the tests both are savepoints of one connection: it would roll the claim back).
        g.pop("db_session").close()
        session = app.extensions["db"].sessionmaker()
        result = idempotency.claim(
            session,
            principal=principal,
            user_id=user_id,
            key=headers["Idempotency-Key"],
            request_hash=request_hash,
            ttl=timedelta(hours=48),
            **kw,
        )
        session.commit()
        session.close()
    return result


def test_a_repeat_while_the_first_runs_is_409(
    app: Flask, strict_client: FlaskClient, patient_headers: Headers, session: Session
) -> None:
    headers, body = keyed(patient_headers, "k-6"), checkin_body()
    _claim_as(app, "/v1/checkins", body, headers, now=datetime.now(UTC))  # "in flight"
    # The strict client: its Retry-After is one the document declares.
    busy = strict_client.post("/v1/checkins", json=body, headers=headers)
    assert busy.status_code == 409
    assert busy.headers["Content-Type"] == "application/problem+json"
    assert busy.headers["Retry-After"] == "1"
    assert count(session, Checkin) == 0


def test_an_abandoned_claim_is_taken_over(
    app: Flask, client: FlaskClient, patient_headers: Headers, session: Session
) -> None:
    headers, body = keyed(patient_headers, "k-7"), checkin_body()
    # A worker claimed it two minutes ago and died (the lease is one minute).
    _claim_as(app, "/v1/checkins", body, headers, now=datetime.now(UTC) - timedelta(minutes=2))
    assert client.post("/v1/checkins", json=body, headers=headers).status_code == 201
    replay = client.post("/v1/checkins", json=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert count(session, Checkin) == 1


def test_claim_rules_in_the_service(session: Session, patient: Any) -> None:
    now = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    args = {"principal": f"user:{patient.id}", "user_id": patient.id, "key": "svc"}
    ttl = timedelta(hours=1)  # below the floor: kept 24 hours anyway
    first = idempotency.claim(session, **args, request_hash="a" * 64, now=now, ttl=ttl)
    assert first.owned
    with pytest.raises(KeyInFlight):
        idempotency.claim(session, **args, request_hash="a" * 64, now=now, ttl=ttl)
    with pytest.raises(KeyReused):
        idempotency.claim(session, **args, request_hash="b" * 64, now=now, ttl=ttl)
    idempotency.complete(
        session, row_id=first.row_id, status=201, body=b"{}", headers={}, resource_id=None
    )
    stored = idempotency.claim(
        session, **args, request_hash="a" * 64, now=now + timedelta(hours=23, minutes=59), ttl=ttl
    )
    assert not stored.owned and stored.replay is not None and stored.replay.status == 201
    # Past 24 hours the key is free again, for any request.
    later = idempotency.claim(
        session, **args, request_hash="b" * 64, now=now + timedelta(hours=24), ttl=ttl
    )
    assert later.owned and later.row_id == first.row_id


def test_purge_removes_only_expired_keys(session: Session, patient: Any) -> None:
    from jobs.purge_idempotency import purge

    now = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    for i, age in enumerate([timedelta(hours=49), timedelta(hours=47), timedelta(0)]):
        claimed = idempotency.claim(
            session,
            principal="anon:x",
            user_id=None,
            key=f"p{i}",
            request_hash="c" * 64,
            now=now - age,
            ttl=timedelta(hours=48),
        )
        if i != 2:
            idempotency.complete(
                session, row_id=claimed.row_id, status=200, body=b"", headers={}, resource_id=None
            )
    assert purge(session, now=now) == 1
    assert sorted(session.scalars(select(IdempotencyKey.key))) == ["p1", "p2"]
    assert purge(session, now=now) == 0


def test_the_scheduler_runs_the_purge(app: Flask) -> None:
    from jobs.__main__ import build_scheduler

    job = build_scheduler(app).get_job("purge_idempotency")
    assert job is not None
    from jobs.purge_idempotency import purge

    assert job.args[1] is purge


def test_deleting_a_checkin_forgets_its_stored_answer(
    client: FlaskClient, patient_headers: Headers, session: Session
) -> None:
    body = checkin_body(id=str(uuid.uuid4()), note="to be erased")
    headers = keyed(patient_headers, "k-8")
    assert client.post("/v1/checkins", json=body, headers=headers).status_code == 201
    assert client.delete(f"/v1/checkins/{body['id']}", headers=patient_headers).status_code == 204
    assert count(session, IdempotencyKey) == 0  # the note does not outlive the check-in there
    resent = client.post("/v1/checkins", json=body, headers=headers)
    assert resent.status_code == 409  # not a replay that would bring it back to the phone


def test_erasing_the_account_erases_its_keys(
    client: FlaskClient, patient: Any, patient_headers: Headers, session: Session
) -> None:
    client.post("/v1/checkins", json=checkin_body(), headers=keyed(patient_headers, "k-9"))
    assert count(session, IdempotencyKey) == 1
    session.delete(patient)
    session.commit()
    assert count(session, IdempotencyKey) == 0


def test_sign_in_answers_are_never_stored(client: FlaskClient, session: Session) -> None:
    account = {
        "email": "kim@example.test",
        "password": "correct horse battery",
        "display_name": "Kim",
        "timezone": "UTC",
    }
    headers = {"Idempotency-Key": "reg-1"}
    registered = client.post("/v1/auth/register", json=account, headers=headers)
    replay = client.post("/v1/auth/register", json=account, headers=headers)
    assert (registered.status_code, replay.status_code) == (202, 202)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json == registered.json

    credentials = {"email": account["email"], "password": account["password"]}
    token_headers = {"Idempotency-Key": "tok-1"}
    first = client.post("/v1/auth/token", json=credentials, headers=token_headers)
    second = client.post("/v1/auth/token", json=credentials, headers=token_headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert "Idempotent-Replayed" not in second.headers  # a fresh sign-in, not a stored one
    assert second.json["access_token"] != first.json["access_token"]
    refreshed = client.post(
        "/v1/auth/refresh",
        json={"refresh_token": first.json["refresh_token"]},
        headers={"Idempotency-Key": "ref-1"},
    )
    assert refreshed.status_code == 200
    session.expire_all()
    rows = list(session.scalars(select(IdempotencyKey)))
    assert [r.key for r in rows] == ["reg-1"]
    stored = (
        b"".join(r.response_body or b"" for r in rows)
        + str([(r.request_hash, r.principal) for r in rows]).encode()
    )
    for secret in (
        first.json["access_token"],
        first.json["refresh_token"],
        refreshed.json["refresh_token"],
        account["password"],
    ):
        assert secret.encode() not in stored


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "tab\tkey", "ключ"])
def test_a_malformed_key_is_422(client: FlaskClient, patient_headers: Headers, key: str) -> None:
    response = client.post(
        "/v1/checkins", json=checkin_body(), headers={**patient_headers, "Idempotency-Key": key}
    )
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json["errors"]


def test_the_key_is_only_for_posts(
    client: FlaskClient, patient_headers: Headers, session: Session
) -> None:
    assert client.get("/v1/checkins", headers=keyed(patient_headers, "g")).status_code == 200
    assert count(session, IdempotencyKey) == 0


def _committed_patient(app: Flask) -> Headers:
    with app.app_context():
        session = app.extensions["db"].sessionmaker()
        from api.security import password_hasher

        user = auth_services.create_user(
            session,
            email=f"{uuid.uuid4().hex[:8]}@example.test",
            password="correct horse battery",
            display_name="Race",
            timezone="UTC",
            hasher=password_hasher(),
        )
        now = datetime.now(UTC)
        login = AuthSession(user_id=user.id, created_at=now)
        session.add(login)
        session.commit()
        token = issue_access_token(
            user_id=user.id, role="patient", session_id=login.id, now=now, ttl=600
        )
        session.close()
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("attempt", range(3))
def test_two_identical_requests_at_once_store_one_checkin(
    app: Flask, committed_db: Engine, attempt: int
) -> None:
    """Real commits, separate connections, two threads released together."""
    headers = keyed(_committed_patient(app), f"race-{attempt}")
    body = checkin_body()  # no client id: only the key stands between two copies
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def send() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/v1/checkins", json=body, headers=headers)
        results.append((response.status_code, response.json))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    statuses = sorted(status for status, _ in results)
    assert statuses in ([201, 201], [201, 409]), results
    ids = {body_["id"] for status, body_ in results if status == 201}
    assert len(ids) == 1  # a 201 twice is the first answer and its replay
    with committed_db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Checkin)) == 1
        assert conn.scalar(select(func.count()).select_from(IdempotencyKey)) == 1
        assert conn.scalar(select(IdempotencyKey.status)) == 201
    replay = app.test_client().post("/v1/checkins", json=body, headers=headers)
    assert replay.status_code == 201 and replay.json["id"] in ids


def test_every_post_documents_the_header(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    posts = {path: ops["post"] for path, ops in spec["paths"].items() if "post" in ops}
    assert "/v1/checkins" in posts
    for path, operation in posts.items():
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        # FHIR Bulk Data kick-offs also take `Prefer: respond-async` (the IG's header).
        expected = ["Prefer", "Idempotency-Key"] if path.endswith("$export") else []
        assert headers == (expected or ["Idempotency-Key"]), path
        assert {"409", "422"} <= set(operation["responses"]), path


def test_a_body_refused_before_the_view_claims_no_key(
    client: FlaskClient, patient_headers: Headers, session: Session
) -> None:
    refused = client.post(
        "/v1/checkins",
        data="recorded_at=now",
        content_type="application/x-www-form-urlencoded",
        headers=keyed(patient_headers, "k-415"),
    )
    assert refused.status_code == 415
    assert refused.json["request_id"] == refused.headers["X-Request-ID"]
    assert count(session, IdempotencyKey) == 0


def test_a_signed_out_token_gets_401_not_the_replay(
    client: FlaskClient, patient: Any, patient_headers: Headers, session: Session
) -> None:
    headers = keyed(patient_headers, "k-logout")
    body = checkin_body(note="before sign-out")
    assert client.post("/v1/checkins", json=body, headers=headers).status_code == 201
    auth_services.end_all_sessions(
        session, user_id=patient.id, now=datetime.now(UTC), reason="logout"
    )
    session.commit()
    again = client.post("/v1/checkins", json=body, headers=headers)
    assert again.status_code == 401
    assert "Idempotent-Replayed" not in again.headers
    assert "before sign-out" not in again.get_data(as_text=True)
