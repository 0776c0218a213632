"""Dashboard fixtures: signing a user in through the real pages (password, then TOTP)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from flask.testing import FlaskClient

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def next_code(secret: str) -> str:
    """A code for the next time step: valid now (one step of drift is allowed) and never the
    step an enrolment just spent."""
    return pyotp.TOTP(secret).at(time.time() + 30)


@pytest.fixture
def clinic_sign_in(app: Any) -> Callable[..., dict[str, str]]:
    """Sign `user` in on `client` (enrolling TOTP on the first sign-in). Returns the user's
    TOTP secret and the session's CSRF token."""
    secrets: dict[Any, str] = {}

    def sign_in(
        client: FlaskClient,
        user: Any,
        password: str = "correct horse battery",  # noqa: S107 - the factories' password
    ) -> dict[str, str]:
        page = client.get("/clinic/login").get_data(as_text=True)
        answer = client.post(
            "/clinic/login",
            data={"email": user.email, "password": password, "csrf_token": csrf_of(page)},
        )
        assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
        if answer.headers["Location"].startswith("/clinic/enrol"):
            page = client.get("/clinic/enrol").get_data(as_text=True)
            secret = SECRET.search(page)
            assert secret
            secrets[user.id] = secret.group(1)
            done = client.post(
                "/clinic/enrol",
                data={"code": pyotp.TOTP(secrets[user.id]).now(), "csrf_token": csrf_of(page)},
            )
            assert done.status_code == 200, done.get_data(as_text=True)[:500]
        else:
            page = client.get("/clinic/login/code").get_data(as_text=True)
            done = client.post(
                "/clinic/login/code",
                data={"code": next_code(secrets[user.id]), "csrf_token": csrf_of(page)},
            )
            assert done.status_code == 302, done.get_data(as_text=True)[:500]
        home = client.get("/clinic/", follow_redirects=True).get_data(as_text=True)
        return {"secret": secrets[user.id], "csrf": csrf_of(home)}

    return sign_in
