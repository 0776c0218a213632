"""The second factor at rest: TOTP secrets sealed under MFA_ENCRYPTION_KEY (enrolled, and pending
in a dashboard session), recovery codes as keyed hashes, and key rotation."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from cryptography.fernet import Fernet, InvalidToken
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import mfa
from api.auth.models import RecoveryCode, User
from api.clinic.models import ClinicSession
from tests.clinic.conftest import csrf_of

PASSWORD = "correct horse battery"


def _enrol(client: FlaskClient, user: User, session: Session) -> tuple[str, list[str]]:
    page = client.get("/clinic/login").get_data(as_text=True)
    client.post(
        "/clinic/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_of(page)},
    )
    page = client.get("/clinic/enrol").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)  # type: ignore[union-attr]
    # While enrolment is pending, the session row holds the secret sealed too.
    (pending,) = session.scalars(
        select(ClinicSession.pending_totp_secret).where(ClinicSession.user_id == user.id)
    )
    assert pending is not None and secret not in pending
    done = client.post(
        "/clinic/enrol", data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_of(page)}
    )
    codes = re.findall(r"<li><code>([0-9a-f-]+)</code></li>", done.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def test_enrolment_stores_the_secret_sealed_and_the_codes_keyed(
    app: Flask, client: FlaskClient, session: Session, make_clinician: Any
) -> None:
    clinician = make_clinician()
    secret, codes = _enrol(client, clinician, session)
    session.expire_all()
    stored = session.get(User, clinician.id)
    assert stored is not None and stored.totp_secret is not None
    assert secret not in stored.totp_secret
    box = mfa.SecretBox.of(app.config)
    assert box.open(stored.totp_secret) == (secret, False)
    hashes = set(session.scalars(select(RecoveryCode.code_hash)))
    bare = {hashlib.sha256(c.replace("-", "").encode()).hexdigest() for c in codes}
    assert len(hashes) == 10 and not hashes & bare
    # Another key opens nothing.
    with pytest.raises(InvalidToken):
        mfa.SecretBox(keys=(Fernet.generate_key().decode(),)).open(stored.totp_secret)


def test_a_rotated_key_still_opens_and_the_secret_moves_to_the_new_key(
    session: Session, make_clinician: Any
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before, after = mfa.SecretBox(keys=(old,)), mfa.SecretBox(keys=(new, old))
    clinician = make_clinician()
    now = datetime.now(UTC)
    secret = mfa.new_secret()
    codes = mfa.enrol(
        session, user=clinician, secret=secret, now=now - timedelta(minutes=5), box=before
    )
    code = pyotp.TOTP(secret).at(now)
    assert mfa.verify_totp(session, user=clinician, code=code, now=now, box=after)
    assert clinician.totp_secret is not None
    assert after.open(clinician.totp_secret) == (secret, False)  # sealed under the new key now
    with pytest.raises(InvalidToken):
        before.open(clinician.totp_secret)
    # A recovery code made under the old key works once while the old key is listed.
    assert mfa.use_recovery_code(session, user=clinician, code=codes[0], now=now, box=after)
    assert not mfa.use_recovery_code(session, user=clinician, code=codes[0], now=now, box=after)
    only_new = mfa.SecretBox(keys=(new,))
    assert not mfa.use_recovery_code(session, user=clinician, code=codes[1], now=now, box=only_new)
