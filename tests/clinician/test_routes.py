"""The clinician roster and alerts over HTTP: only consented patients, with the notice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from api.alerts import services as alert_services
from api.consent import services as consent_services
from api.disclosures.notice import NOTICE_HEADER
from tests.consenting import sign
from tests.support.queries import count_queries


def test_roster_lists_only_consents_in_force(
    client: FlaskClient,
    session: Any,
    app: Any,
    make_patient: Any,
    make_clinician: Any,
    auth_headers: Any,
) -> None:
    clinician, other_clinician = make_clinician(), make_clinician()
    now = datetime.now(UTC)
    shown = make_patient(display_name="Shown Patient")
    consent = sign(
        session, patient=shown, clinician=clinician, categories=["symptoms", "counseling"]
    )
    expired, revoked, elsewhere = make_patient(), make_patient(), make_patient()
    sign(session, patient=expired, clinician=clinician, now=now - timedelta(days=3), days=1)
    gone = sign(session, patient=revoked, clinician=clinician)
    consent_services.revoke_consent(session, patient_id=revoked.id, consent_id=gone.id, now=now)
    sign(session, patient=elsewhere, clinician=other_clinician)
    now = datetime.now(UTC)  # after the signing: the alert falls in the consent's window
    alert_services.raise_alert(
        session, patient_id=shown.id, kind="k", category="symptoms", episode_key="1", now=now
    )
    alert_services.raise_alert(
        session, patient_id=shown.id, kind="k", category="medications", episode_key="2", now=now
    )
    session.commit()

    response = client.get("/v1/clinician/patients", headers=auth_headers(clinician))
    assert response.status_code == 200
    assert response.json["items"] == [
        {
            "patient_id": str(shown.id),
            "display_name": "Shown Patient",
            "consent": {
                "id": str(consent.id),
                "categories": ["counseling", "symptoms"],
                "purpose": "care_coordination",
                "expires_at": consent.expires_at.isoformat(),  # type: ignore[union-attr]
                "signed_at": consent.signed_at.isoformat(),
                "share_weekly_summary": False,
            },
            "open_alerts": 1,  # the medications alert is not covered
        }
    ]
    assert response.json["notice"] == app.config["REDISCLOSURE_NOTICE"]
    assert response.headers[NOTICE_HEADER].startswith("This record which has been disclosed")
    assert "email" not in response.get_data(as_text=True)


def test_roster_queries_do_not_grow_with_patients(
    client: FlaskClient,
    session: Any,
    engine: Engine,
    make_patient: Any,
    make_clinician: Any,
    auth_headers: Any,
) -> None:
    clinician = make_clinician()
    headers = auth_headers(clinician)

    def run() -> int:
        with count_queries(engine, only="SELECT") as statements:
            response = client.get("/v1/clinician/patients", headers=headers)
        assert response.status_code == 200
        return len(statements)

    sign(session, patient=make_patient(), clinician=clinician)
    one = run()
    for _ in range(5):
        sign(session, patient=make_patient(), clinician=clinician)
    assert run() == one


def test_roster_pages(
    client: FlaskClient, session: Any, make_patient: Any, make_clinician: Any, auth_headers: Any
) -> None:
    clinician = make_clinician()
    now = datetime.now(UTC)
    for i in range(3):
        sign(session, patient=make_patient(), clinician=clinician, now=now - timedelta(minutes=i))
    headers = auth_headers(clinician)
    first = client.get("/v1/clinician/patients", query_string={"limit": 2}, headers=headers).json
    second = client.get(
        "/v1/clinician/patients",
        query_string={"limit": 2, "cursor": first["next_cursor"]},
        headers=headers,
    ).json
    ids = [p["patient_id"] for p in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 3 and second["next_cursor"] is None


def test_alerts_list_and_acknowledge(
    client: FlaskClient,
    session: Any,
    app: Any,
    make_patient: Any,
    make_clinician: Any,
    auth_headers: Any,
) -> None:
    clinician, patient = make_clinician(), make_patient()
    sign(session, patient=patient, clinician=clinician, categories=["medications"])
    now = datetime.now(UTC)
    alert, _ = alert_services.raise_alert(
        session,
        patient_id=patient.id,
        kind="missed_doses",
        category="medications",
        episode_key="w",
        now=now,
    )
    session.commit()
    headers = auth_headers(clinician)
    listed = client.get("/v1/clinician/alerts", headers=headers)
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json["items"]] == [str(alert.id)]
    assert listed.json["items"][0]["kind"] == "missed_doses"
    assert listed.json["notice"] == app.config["REDISCLOSURE_NOTICE"]
    acked = client.post(f"/v1/clinician/alerts/{alert.id}/acknowledge", headers=headers)
    assert acked.status_code == 200
    assert acked.json["acknowledged_by"] == str(clinician.id)
    assert client.get("/v1/clinician/alerts", headers=headers).json["items"] == []
    everything = client.get("/v1/clinician/alerts", query_string={"state": "all"}, headers=headers)
    assert len(everything.json["items"]) == 1
    stranger = auth_headers(make_clinician())
    assert (
        client.post(f"/v1/clinician/alerts/{alert.id}/acknowledge", headers=stranger).status_code
        == 404
    )
    assert client.get("/v1/clinician/alerts", headers=stranger).json["items"] == []
    patient_headers = auth_headers(patient)
    assert client.get("/v1/clinician/alerts", headers=patient_headers).status_code == 403


def test_a_roster_count_of_open_alerts_is_a_disclosure_in_the_ledger(
    client: FlaskClient,
    session: Any,
    make_patient: Any,
    make_clinician: Any,
    auth_headers: Any,
) -> None:
    # The count is derived from the alerts: the patients it is shown for get a ledger row for
    # the alerts' categories and events' period (as listing the alerts does); no alerts, no row.
    from sqlalchemy import select

    from api.disclosures.models import Disclosure

    clinician = make_clinician()
    now = datetime.now(UTC)
    alerting, quiet = make_patient(), make_patient()
    consent = sign(
        session,
        patient=alerting,
        clinician=clinician,
        categories=["symptoms", "counseling"],
        now=now - timedelta(days=5),
        data_from=now - timedelta(days=20),
    )
    sign(session, patient=quiet, clinician=clinician, now=now - timedelta(days=5))
    spans = {
        "symptoms": (now - timedelta(days=9), now - timedelta(days=8)),
        "counseling": (now - timedelta(days=3), now - timedelta(days=2)),
    }
    for n, (category, (start, end)) in enumerate(spans.items()):
        alert_services.raise_alert(
            session, patient_id=alerting.id, kind=f"k{n}", category=category,
            episode_key="1", now=now, events_from=start, events_to=end,
        )  # fmt: skip
    session.commit()

    response = client.get("/v1/clinician/patients", headers=auth_headers(clinician))
    assert response.status_code == 200
    counts = {i["patient_id"]: i["open_alerts"] for i in response.json["items"]}
    assert counts == {str(alerting.id): 2, str(quiet.id): 0}
    rows = session.scalars(select(Disclosure).where(Disclosure.recipient_id == clinician.id)).all()
    assert [(r.patient_id, r.consent_id, r.kind, sorted(r.categories)) for r in rows] == [
        (alerting.id, consent.id, "read", ["counseling", "symptoms"])
    ]
    assert (rows[0].data_from, rows[0].data_to) == (spans["symptoms"][0], spans["counseling"][1])
    # The answer carries the scope of the consent it disclosed under (42 CFR 2.32(b)).
    assert [s["consent_id"] for s in response.json["consent_scopes"]] == [str(consent.id)]


def test_roster_statements_do_not_grow_with_the_patients_it_counts_alerts_for(
    client: FlaskClient,
    session: Any,
    engine: Engine,
    make_patient: Any,
    make_clinician: Any,
    auth_headers: Any,
) -> None:
    # Every patient counted gets a ledger row, all in one INSERT: a page of 50 alerting
    # patients costs the statements of a page of one.
    from tests.support.queries import TEST_TRANSACTION

    clinician = make_clinician()
    headers = auth_headers(clinician)

    def alerting_patient() -> None:
        patient = make_patient()
        sign(session, patient=patient, clinician=clinician)
        alert_services.raise_alert(
            session, patient_id=patient.id, kind="k", category="symptoms", episode_key="1",
            now=datetime.now(UTC),
        )  # fmt: skip
        session.commit()

    def run() -> list[str]:
        with count_queries(engine, skip=TEST_TRANSACTION) as statements:
            response = client.get("/v1/clinician/patients", headers=headers)
        assert response.status_code == 200
        return [s.split()[0] for s in statements]

    alerting_patient()
    one = run()
    for _ in range(4):
        alerting_patient()
    assert run() == one
    assert one.count("INSERT") == 2, one  # the audit row and the ledger rows
