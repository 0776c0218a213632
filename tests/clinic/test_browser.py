"""The dashboard in a real headless Chromium (Playwright driving Debian's /usr/bin/chromium)
against the app served on a local port, with axe-core (node_modules, from package-lock.json)
checking every page for serious or critical accessibility violations.

Skipped where Chromium or axe-core is missing, unless WAYMARK_REQUIRE_BROWSER=1 (CI), which turns
the skip into a failure. WAYMARK_SCREENSHOTS=1 writes each page's PNG to docs/dashboard/.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.alerts import services as alert_services
from api.auth import services as auth_services
from api.auth.models import User
from api.checkins import services as checkin_services
from api.consent import services as consent_services
from api.consent.models import Consent
from api.security import password_hasher
from jobs import weekly_summaries as weekly_job
from tests.consenting import sign
from tests.livesite import serve

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "docs" / "dashboard"
PASSWORD = "correct horse battery"
PORTS = range(9200, 9250)

_missing = [
    what
    for what, ok in (("chromium", Path(CHROMIUM).exists()), ("axe-core (npm ci)", AXE.exists()))
    if not ok
]
if _missing and os.environ.get("WAYMARK_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"WAYMARK_REQUIRE_BROWSER=1 but missing: {', '.join(_missing)}")
pytestmark = [
    pytest.mark.skipif(bool(_missing), reason=f"missing: {', '.join(_missing)}"),
    pytest.mark.slow,
]


@pytest.fixture
def live(app: Flask, committed_db: Engine) -> Iterator[str]:
    """The app on a local port (one thread), over a database whose writes really commit."""
    with serve(app, threaded=False, ports=PORTS) as base:
        yield base


@pytest.fixture
def db(app: Flask, committed_db: Engine) -> Iterator[Session]:
    session: Session = app.extensions["db"].sessionmaker()
    yield session
    session.close()


def _user(app: Flask, db: Session, **fields: Any) -> User:
    with app.app_context():
        user = auth_services.create_user(
            db,
            email=f"{uuid.uuid4().hex[:10]}@example.test",
            password=PASSWORD,
            timezone="America/New_York",
            hasher=password_hasher(),
            **fields,
        )
    db.commit()
    return user


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


def _axe(page: Any, name: str) -> None:
    """No serious or critical axe-core violation on the page (and its screenshot, on demand)."""
    # Evaluated through the DevTools protocol, which the page's CSP does not govern: the page
    # itself still runs no script but its own.
    page.evaluate(AXE.read_text())
    found = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(' | '));
        }"""
    )
    assert found == [], f"{name}: {found}"
    if os.environ.get("WAYMARK_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _no_console_csp_errors(page: Any, errors: list[str]) -> None:
    assert not [e for e in errors if "Content Security Policy" in e], errors


def _sign_in(page: Any, base: str, user: User, secret: str | None) -> str:
    """Sign in through the pages; enrol on the first time. Returns the TOTP secret."""
    page.goto(f"{base}/clinic/")
    page.fill("#email", user.email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    if secret is None:
        page.wait_for_url(re.compile(r".*/clinic/enrol"))
        _axe(page, "enrol")
        secret = page.inner_text("#totp-secret").strip()
        page.fill("#code", pyotp.TOTP(secret).now())
        page.click("main button[type=submit]")
        page.wait_for_selector("#recovery-codes")
        _axe(page, "recovery-codes")
        page.click("text=Continue to the dashboard")
    else:
        page.wait_for_url(re.compile(r".*/clinic/login/code"))
        _axe(page, "second-factor")
        page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
        page.click("main button[type=submit]")
    page.wait_for_load_state()
    return secret


def test_clinician_journey(app: Flask, db: Session, live: str, browser: Any) -> None:
    now = datetime.now(UTC)
    clinician = _user(app, db, display_name="Dr. Rivera", role="clinician", organization="Clinic")
    other = _user(app, db, display_name="Dr. Other", role="clinician", organization="Clinic")
    full = _user(app, db, display_name="Alex Full")
    partial = _user(app, db, display_name="Blair Partial")
    stranger = _user(app, db, display_name="Casey Elsewhere")
    sign(
        db,
        patient=full,
        clinician=clinician,
        categories=["symptoms", "medications", "counseling"],
        now=now - timedelta(days=10),
        data_from=now - timedelta(days=40),
        share_weekly_summary=True,
    )
    sign(
        db,
        patient=partial,
        clinician=clinician,
        categories=["symptoms"],
        now=now - timedelta(days=5),
    )
    sign(
        db, patient=stranger, clinician=other, categories=["symptoms"], now=now - timedelta(days=5)
    )
    for day in range(1, 15):
        checkin_services.create_checkin(
            db,
            user_id=full.id,
            body={
                "id": None,
                "recorded_at": now - timedelta(days=day, hours=2),
                "symptoms": {"anxiety": day % 7},
                "craving": day % 10,
                "note": None,
            },
            now=now - timedelta(days=day, hours=2),
        )
    alert_services.raise_alert(
        db,
        patient_id=full.id,
        kind="craving_high",
        category="symptoms",
        episode_key="browser",
        now=now - timedelta(hours=1),
        detail="Craving 9 of 10 on two days running.",
    )
    db.commit()

    context = browser.new_context(viewport={"width": 1180, "height": 900})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))

    # A reminder email's inbox link lands on a page (no sign-in; it looks nothing up).
    assert page.goto(f"{live}/inbox/{uuid.uuid4()}").status == 200
    _axe(page, "inbox-link")
    page.goto(f"{live}/clinic/")
    _axe(page, "sign-in")
    # TOTP enrolment and sign-in.
    secret = _sign_in(page, live, clinician, None)
    assert page.url.endswith("/clinic/patients")
    _axe(page, "roster")
    assert "Alex Full" in page.content() and "Blair Partial" in page.content()
    assert "Casey Elsewhere" not in page.content()

    # Sort by the column headers: the current one reverses, another sorts problems first; the
    # header says which way (aria-sort), and the page is still accessible.
    def names() -> list[str]:
        return page.eval_on_selector_all(
            "table.roster tbody tr td:first-child a", "els => els.map(e => e.textContent)"
        )

    def sorted_by() -> list[tuple[str, str]]:
        return page.eval_on_selector_all(
            "table.roster th[aria-sort]",
            "els => els.map(e => [e.querySelector('a').firstChild.textContent,"
            " e.getAttribute('aria-sort')])",
        )

    assert names() == ["Alex Full", "Blair Partial"]
    assert sorted_by() == [["Name", "ascending"]]
    page.click("table.roster th >> text=Name")
    page.wait_for_url(re.compile(r".*sort=-name"))
    assert names() == ["Blair Partial", "Alex Full"]
    assert sorted_by() == [["Name", "descending"]]
    page.click("table.roster th >> text=Open alerts")
    page.wait_for_url(re.compile(r".*sort=-alerts"))
    assert names() == ["Alex Full", "Blair Partial"]  # one open alert, then none
    assert sorted_by() == [["Open alerts", "descending"]]
    page.click("table.roster th >> text=Last check-in")
    page.wait_for_url(re.compile(r".*sort=checkin"))
    assert names() == ["Alex Full", "Blair Partial"]  # Blair has none: last
    assert sorted_by() == [["Last check-in", "ascending"]]
    _axe(page, "roster-sorted")
    page.goto(f"{live}/clinic/patients")

    # Open a patient; change the summary period.
    page.click("text=Alex Full")
    page.wait_for_selector("article.summary")
    assert "Redisclosure notice" in page.content()
    _axe(page, "patient")
    before = page.inner_text("article.summary header dl")
    page.select_option("#days", "7")
    page.click("form[aria-label='Summary period'] button")
    page.wait_for_url(re.compile(r".*days=7"))
    assert page.eval_on_selector("#days", "el => el.value") == "7"
    after = page.inner_text("article.summary header dl")
    first_day = (datetime.now(UTC) - timedelta(days=7)).astimezone(ZoneInfo("America/New_York"))
    assert after != before and f"{first_day.date()} to" in after

    # The consent the patient signed.
    page.click("main >> text=Consent")
    _axe(page, "consent")

    # Record a COWS: the live total and band, then the saved band.
    page.goto(f"{live}/clinic/patients/{full.id}/cows")
    _axe(page, "cows")
    for fieldset in page.query_selector_all("fieldset.item"):
        fieldset.query_selector_all("input[type=radio]")[-1].check()
    assert page.inner_text("#cows-total-value") == "48"
    assert page.inner_text("#cows-band") == "severe"
    page.click("#cows-form button[type=submit]")
    page.wait_for_selector("#cows-saved")
    assert "severe" in page.inner_text("#cows-saved")

    # Acknowledge an alert with a note.
    page.goto(f"{live}/clinic/alerts")
    _axe(page, "alerts")
    page.fill("form.ack input[name=note]", "Called, stable")
    page.click("form.ack button")
    page.wait_for_selector("text=Alert acknowledged.")
    assert (
        "craving high" not in page.inner_text("main ul.alert-list")
        if page.query_selector("main ul.alert-list")
        else True
    )
    # The note is kept with the acknowledgement and shown to its author.
    page.click("nav.tabs >> text=Acknowledged")
    acknowledged = page.inner_text("main ul.alert-list")
    assert "craving high" in acknowledged and "Called, stable" in acknowledged
    _axe(page, "alerts-acknowledged")

    # The weekly summaries inbox, and one summary (built and delivered by the weekly job).
    weekly_job.build_weekly_summaries(db, now=datetime.now(UTC), config=app.config)
    db.commit()
    weekly_job.deliver_weekly_summaries(db, now=datetime.now(UTC), config=app.config)
    page.goto(f"{live}/clinic/summaries")
    _axe(page, "summaries")
    page.click("main table tbody a")
    page.wait_for_url(re.compile(r".*/clinic/summaries/[0-9a-f-]+$"))
    assert "Alex Full" in page.content()
    _axe(page, "summary")

    # Another clinician's patient by URL: 404.
    assert page.goto(f"{live}/clinic/patients/{stranger.id}").status == 404
    _axe(page, "not-found")

    # A revocation: gone from the roster, and the page 404s on the next click.
    page.goto(f"{live}/clinic/patients")
    consent = db.scalar(select(Consent).where(Consent.patient_id == partial.id))
    assert consent is not None
    consent_services.revoke_consent(
        db, patient_id=partial.id, consent_id=consent.id, now=datetime.now(UTC)
    )
    db.commit()
    with page.expect_navigation() as nav:
        page.click("text=Blair Partial")
    assert nav.value.status == 404
    page.goto(f"{live}/clinic/patients")
    assert "Blair Partial" not in page.content()

    # A form post without its CSRF token is refused.
    alert_services.raise_alert(
        db,
        patient_id=full.id,
        kind="missed_doses",
        category="symptoms",
        episode_key="b2",
        now=datetime.now(UTC),
    )
    db.commit()
    page.goto(f"{live}/clinic/alerts")
    page.evaluate("document.querySelector('form.ack input[name=csrf_token]').remove()")
    with page.expect_navigation() as nav:
        page.click("form.ack button")
    assert nav.value.status == 400
    assert "Form expired" in page.content()
    _axe(page, "form-expired")

    # Sign out, then sign in again with the code.
    page.goto(f"{live}/clinic/patients")
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r".*/clinic/login"))
    _sign_in(page, live, clinician, secret)
    assert page.url.endswith("/clinic/patients")

    # Idle timeout signs out.
    original = app.config["CLINIC_IDLE_TIMEOUT"]
    app.config["CLINIC_IDLE_TIMEOUT"] = 2
    try:
        time.sleep(2.5)
        page.goto(f"{live}/clinic/patients")
        assert "/clinic/login" in page.url
    finally:
        app.config["CLINIC_IDLE_TIMEOUT"] = original
    _no_console_csp_errors(page, console)
    context.close()


def test_admin_pages(app: Flask, db: Session, live: str, browser: Any) -> None:
    admin = _user(app, db, display_name="Admin Person", role="admin")
    clinician = _user(app, db, display_name="Dr. Leaving", role="clinician", organization="Clinic")
    context = browser.new_context(viewport={"width": 1180, "height": 900})
    page = context.new_page()
    _sign_in(page, live, admin, None)
    assert page.url.endswith("/clinic/admin/clinicians")
    _axe(page, "admin-clinicians")
    page.fill("#c-name", "Dr. New")
    page.fill("#c-email", "dr.new@example.test")
    page.fill("#c-pass", "temporary password 1")
    page.click("text=Create clinician")
    page.wait_for_selector("text=Clinician created.")
    other = browser.new_context()
    their = other.new_page()
    first_secret = _sign_in(their, live, clinician, None)
    # A lost phone: the admin resets the enrolled clinician's second factor; their session ends
    # and their next sign-in enrols a new one.
    page.goto(f"{live}/clinic/admin/clinicians")
    _axe(page, "admin-clinicians-enrolled")
    page.click(f"tr:has-text('{clinician.display_name}') >> text=Reset second factor")
    page.wait_for_selector("text=Second factor reset")
    _axe(page, "admin-clinicians-reset")
    their.goto(f"{live}/clinic/patients")
    assert "/clinic/login" in their.url
    assert _sign_in(their, live, clinician, None) != first_secret
    # Deactivation ends the clinician's dashboard session at once.
    page.click(f"tr:has-text('{clinician.display_name}') >> text=Deactivate")
    page.wait_for_load_state()
    their.goto(f"{live}/clinic/patients")
    assert "/clinic/login" in their.url
    page.goto(f"{live}/clinic/admin/audit")
    _axe(page, "admin-audit")
    other.close()
    context.close()
