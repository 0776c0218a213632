"""GET /v1/instruments serves the same definitions the scoring uses."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from api.instruments.definitions import INSTRUMENTS


def test_instruments_in_the_contract_shape(
    client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    response = client.get("/v1/instruments", headers=patient_headers)
    assert response.status_code == 200
    body = response.json
    assert body["next_cursor"] is None
    by_code = {i["code"]: i for i in body["items"]}
    assert set(by_code) == {"sows", "sows-gossop", "cows"}
    for code, served in by_code.items():
        definition = INSTRUMENTS[code]
        assert {"code", "version", "title", "items", "options", "clinician_only"} <= set(served)
        assert served["version"] == definition.version
        assert served["clinician_only"] is definition.clinician_only
        assert [i["key"] for i in served["items"]] == [i.key for i in definition.items]
        assert served["max_total"] == definition.max_total
    sows = by_code["sows"]
    assert len(sows["items"]) == 16
    assert sows["items"][0] == {"key": "anxious", "text": "I feel anxious", "min": 0, "max": 4}
    assert sows["options"][0] == {"value": 0, "label": "Not at all"}
    assert sows["bands"] == []
    assert len(by_code["sows-gossop"]["items"]) == 10
    cows = by_code["cows"]
    gooseflesh = next(i for i in cows["items"] if i["key"] == "gooseflesh")
    assert gooseflesh["allowed"] == [0, 3, 5]
    assert [o["value"] for o in gooseflesh["options"]] == [0, 3, 5]
    assert cows["bands"][0] == {"min": 5, "max": 12, "severity": "mild"}


def test_instruments_need_a_sign_in_but_any_role(
    client: FlaskClient, make_clinician: Any, auth_headers: Any
) -> None:
    assert client.get("/v1/instruments").status_code == 401
    assert client.get("/v1/instruments", headers=auth_headers(make_clinician())).status_code == 200
