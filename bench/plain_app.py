"""The yardstick for per-request cost: a plain Flask app doing a check-in's work, nothing more.

No flask-smorest, no marshmallow, no ORM, no logging or metrics: PyJWT checks an HS256 bearer
token (no cache), one SELECT checks that its login was not revoked, the check-in (answers as
JSON) and its change-feed row are inserted in one transaction, and the row is answered as JSON.
It runs on the same migrated schema as Waymark, so both write the same tables. bench/vs_plain.py
serves it with gunicorn beside Waymark; it is not part of the product.

    gunicorn -w 2 -b 127.0.0.1:8200 bench.plain_app:app   (DATABASE_URL and SECRET_KEY set)
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import psycopg
from flask import Flask, Response, request

app = Flask(__name__)

_SECRET = os.environ["SECRET_KEY"]
_ISSUER = os.environ.get("JWT_ISSUER", "waymark")
_AUDIENCE = os.environ.get("JWT_AUDIENCE", "waymark-api")
# SQLAlchemy URL -> libpq URL (the driver suffix is SQLAlchemy's, not libpq's).
_DSN = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
_local: dict[str, psycopg.Connection[Any]] = {}

_LIVE = (
    "SELECT u.role FROM users u JOIN auth_sessions s ON s.user_id = u.id"
    " WHERE u.id = %s AND s.id = %s AND s.revoked_at IS NULL"
)
_INSERT = (
    "INSERT INTO checkins (id, user_id, recorded_at, recorded_offset_minutes, instrument,"
    " instrument_version, answers, total, symptoms, craving, craving_scale, sleep_hours, note,"
    " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, '1', %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_FEED = (
    "INSERT INTO changes (user_id, entity_type, entity_id, op, changed_at)"
    " VALUES (%s, 'checkin', %s, 'upsert', %s)"
)


def _db() -> psycopg.Connection[Any]:
    # One connection per worker, opened after gunicorn forks.
    conn = _local.get("conn")
    if conn is None or conn.closed:
        conn = _local["conn"] = psycopg.connect(_DSN)
    return conn


def _json(body: object, status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


@app.get("/healthz")
def healthz() -> Response:
    return _json({"status": "ok"}, 200)


@app.post("/v1/checkins")
def create_checkin() -> Response:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return _json({"title": "Unauthorized"}, 401)
    try:
        claims = jwt.decode(
            token, _SECRET, algorithms=["HS256"], audience=_AUDIENCE, issuer=_ISSUER
        )
    except jwt.InvalidTokenError:
        return _json({"title": "Unauthorized"}, 401)
    conn = _db()
    user_id, session_id = uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"])
    if conn.execute(_LIVE, (user_id, session_id)).fetchone() is None:
        conn.rollback()
        return _json({"title": "Unauthorized"}, 401)
    body = request.get_json()
    recorded = datetime.fromisoformat(body["recorded_at"])
    offset = recorded.utcoffset()
    answers = body.get("answers")
    total = sum(answers.values()) if answers else None
    now = datetime.now(UTC)
    checkin_id = uuid.UUID(body["id"])
    craving = body.get("craving")
    row = (
        checkin_id,
        user_id,
        recorded.astimezone(UTC),
        int(offset.total_seconds() // 60) if offset else 0,
        body.get("instrument"),
        json.dumps(answers) if answers else None,
        total,
        json.dumps(body["symptoms"]) if body.get("symptoms") else None,
        craving,
        "0-10" if craving is not None else None,
        body.get("sleep_hours"),
        body.get("note"),
        now,
        now,
    )
    conn.execute(_INSERT, row)
    conn.execute(_FEED, (user_id, checkin_id, now))
    conn.commit()
    answer = {
        "id": str(checkin_id),
        "recorded_at": body["recorded_at"],
        "instrument": body.get("instrument"),
        "answers": answers,
        "total": total,
        "symptoms": body.get("symptoms"),
        "craving": craving,
        "sleep_hours": body.get("sleep_hours"),
        "note": body.get("note"),
        "created_at": now.isoformat(),
    }
    return _json(answer, 201)
