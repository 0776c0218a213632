"""The served OpenAPI document is exact enough to generate clients from (issue 13)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def doc(app: Any) -> dict[str, Any]:
    with app.test_client() as client:
        return client.get("/openapi.json").get_json()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_the_document_validates(doc: dict[str, Any]) -> None:
    validate(doc)


def test_every_operation_has_a_stable_readable_id(doc: dict[str, Any]) -> None:
    ids = [op.get("operationId") for _, _, op in _operations(doc)]
    assert all(isinstance(i, str) and re.fullmatch(r"[a-z][a-z0-9_]*", i) for i in ids), ids
    assert len(ids) == len(set(ids))
    by_route = {f"{m} {p}": op["operationId"] for p, m, op in _operations(doc)}
    assert by_route["post /v1/medications/{medication_id}/doses"] == "log_dose"
    assert by_route["get /v1/agenda"] == "get_agenda"
    # One view for two methods: the same ids in every process (a set's order is not).
    assert by_route["get /fhir/Patient/$export"] == "start_patient_export"
    assert by_route["post /fhir/Patient/$export"] == "start_patient_export_post"


def test_response_schemas_list_required_fields_and_enums_carry_no_null(
    doc: dict[str, Any],
) -> None:
    schemas = doc["components"]["schemas"]
    for name in ("User", "Checkin", "Medication", "Dose", "Consent", "Agenda", "Problem"):
        assert schemas[name].get("required"), name
    # Everything a checkin answer carries is always there (null where nullable).
    assert set(schemas["Checkin"]["required"]) == set(schemas["Checkin"]["properties"])
    assert "errors" not in schemas["Problem"]["required"]  # only on 422
    for node in _walk(doc):
        if "enum" in node:
            assert None not in node["enum"], node


def test_sync_changes_are_typed_per_type(doc: dict[str, Any]) -> None:
    change = doc["components"]["schemas"]["Change"]
    assert change["discriminator"]["propertyName"] == "type"
    mapping = change["discriminator"]["mapping"]
    assert set(mapping) == {"checkin", "medication", "dose", "counseling_session", "reminder"}
    checkin = doc["components"]["schemas"]["CheckinChange"]
    assert checkin["properties"]["data"]["nullable"] is True
    assert checkin["properties"]["data"]["allOf"] == [{"$ref": "#/components/schemas/Checkin"}]


def test_non_json_answers_and_headers_are_declared(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    summary = paths["/v1/clinician/patients/{patient_id}/summary"]["get"]["responses"]["200"]
    assert list(summary["content"]) == ["application/json", "text/html", "application/pdf"]
    export = paths["/v1/export"]["get"]
    assert {"application/zip", "application/fhir+json"} <= set(
        export["responses"]["200"]["content"]
    )
    assert {p["name"] for p in export["parameters"] if p["in"] == "query"} == {"format"}
    ndjson = paths["/fhir/bulkfiles/{job_id}/{rtype}.ndjson"]["get"]["responses"]["200"]
    assert "application/fhir+ndjson" in ndjson["content"]
    kickoff = paths["/fhir/Patient/$export"]["get"]
    assert "Content-Location" in kickoff["responses"]["202"]["headers"]
    assert {"_type", "_since", "_outputFormat"} <= {p["name"] for p in kickoff["parameters"]}
    polling = paths["/fhir/bulkstatus/{job_id}"]["get"]["responses"]["202"]["headers"]
    assert {"X-Progress", "Retry-After"} <= set(polling)
    assert "ETag" in paths["/v1/crisis-resources"]["get"]["responses"]["200"]["headers"]
    created = paths["/v1/checkins"]["post"]["responses"]["201"]["headers"]
    assert "Idempotent-Replayed" in created


def test_servers_and_described_tags(doc: dict[str, Any]) -> None:
    assert doc["servers"][0]["url"].startswith("http")
    assert doc["tags"] and all(tag.get("description") for tag in doc["tags"])


def test_a_sync_page_with_a_delete_matches_the_document_strictly(
    strict_client: FlaskClient, patient_headers: dict[str, str]
) -> None:
    # Before the document was exact, `data: null` on a delete was undeclared: generated clients
    # crashed on any page holding one. The strict client checks every field of every answer.
    checkin = {"id": str(uuid.uuid4()), "recorded_at": "2026-03-07T21:05:00-05:00", "craving": 2}
    assert (
        strict_client.post("/v1/checkins", json=checkin, headers=patient_headers).status_code == 201
    )
    kept = {**checkin, "id": str(uuid.uuid4())}
    assert strict_client.post("/v1/checkins", json=kept, headers=patient_headers).status_code == 201
    gone = strict_client.delete(f"/v1/checkins/{checkin['id']}", headers=patient_headers)
    assert gone.status_code == 204

    page = strict_client.get("/v1/sync", headers=patient_headers).get_json()

    ops = {(c["id"], c["op"]) for c in page["changes"]}
    assert (checkin["id"], "delete") in ops and (kept["id"], "upsert") in ops
    (delete,) = [c for c in page["changes"] if c["op"] == "delete"]
    assert delete["data"] is None
