"""GET /v1/crisis-resources: from the setting, without sign-in, cacheable."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from api import create_app
from api.config import CRISIS_RESOURCES
from api.crisis import services
from tests.conftest import TestConfig


def test_defaults_served_without_sign_in(client: FlaskClient) -> None:
    response = client.get("/v1/crisis-resources")

    assert response.status_code == 200
    names = [item["name"] for item in response.json["items"]]
    assert names == [item["name"] for item in json.loads(CRISIS_RESOURCES)]
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert response.headers["ETag"]


def test_conditional_get_answers_304(client: FlaskClient) -> None:
    etag = client.get("/v1/crisis-resources").headers["ETag"]

    again = client.get("/v1/crisis-resources", headers={"If-None-Match": etag})

    assert again.status_code == 304
    assert again.data == b""


def test_the_setting_decides_what_is_served() -> None:
    config = TestConfig("sqlite://")
    config.CRISIS_RESOURCES = json.dumps(
        [{"name": "Samaritans", "contact": "116 123", "url": "https://www.samaritans.org/"}]
    )
    app = create_app(config)

    body = app.test_client().get("/v1/crisis-resources").json

    assert body == {
        "items": [
            {"name": "Samaritans", "contact": "116 123", "url": "https://www.samaritans.org/"}
        ]
    }


@pytest.mark.parametrize(
    "raw",
    ["not json", "[]", '{"name": "x"}', '[{"name": "x"}]', '[{"name": "", "contact": "1"}]'],
)
def test_a_malformed_setting_stops_the_app(raw: str) -> None:
    with pytest.raises(ValueError, match="CRISIS_RESOURCES"):
        services.parse_resources(raw)
    config = TestConfig("sqlite://")
    config.CRISIS_RESOURCES = raw
    with pytest.raises(ValueError, match="CRISIS_RESOURCES"):
        create_app(config)
