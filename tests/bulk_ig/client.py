"""A FHIR Bulk Data (v2) client written from the IGs alone: discovery, SMART Backend Services
authorization (a client assertion signed with RS384 or ES384), kick-off, polling, download.

It knows nothing of the server it talks to beyond the base URL and its client id and key: no
project imports, only requests and joserfc (over cryptography).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class BulkClient:
    base: str  # the FHIR base URL, e.g. http://host/fhir
    client_id: str = ""
    key: RSAKey | ECKey | None = None
    alg: str = "RS384"
    scope: str = "system/*.read"
    token: str | None = None
    http: requests.Session = field(default_factory=requests.Session)

    # --- discovery -------------------------------------------------------------------------

    def capability(self) -> dict[str, Any]:
        answer = self.http.get(f"{self.base}/metadata", headers={"Accept": "application/fhir+json"})
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]

    def smart_configuration(self) -> dict[str, Any]:
        root = self.base.rsplit("/fhir", 1)[0]
        answer = self.http.get(f"{self.base}/.well-known/smart-configuration")
        if answer.status_code == 404:  # the IG allows it at the server root too
            answer = self.http.get(f"{root}/.well-known/smart-configuration")
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]

    # --- SMART Backend Services ------------------------------------------------------------

    def assertion(self, token_url: str, *, jti: str | None = None, exp_in: int = 240) -> str:
        assert self.key is not None
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "exp": now + exp_in,
            "jti": jti or uuid.uuid4().hex,
        }
        header = {"alg": self.alg, "typ": "JWT", "kid": self.key.kid}
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])

    def request_token(self, token_url: str, assertion: str) -> requests.Response:
        return self.http.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "scope": self.scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
            headers={"Accept": "application/json"},
        )

    def authorize(self) -> dict[str, Any]:
        token_url = self.smart_configuration()["token_endpoint"]
        answer = self.request_token(token_url, self.assertion(token_url))
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        self.token = body["access_token"]
        return body

    def headers(self, **extra: str) -> dict[str, str]:
        out = {"Accept": "application/fhir+json", **extra}
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out

    # --- Bulk Data -------------------------------------------------------------------------

    def kickoff(
        self,
        path: str,
        params: dict[str, str] | None = None,
        *,
        post: bool = False,
        prefer: str = "respond-async",
    ) -> requests.Response:
        url = f"{self.base}/{path}"
        headers = self.headers(Prefer=prefer)
        if post:
            body = {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": k, "valueInstant" if k == "_since" else "valueString": v}
                    for k, v in (params or {}).items()
                ],
            }
            return self.http.post(
                url,
                data=json.dumps(body),
                headers={**headers, "Content-Type": "application/fhir+json"},
            )
        return self.http.get(url, params=params, headers=headers)

    def poll(self, status_url: str, *, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.http.get(status_url, headers=self.headers())
            if answer.status_code == 200:
                return answer.json()  # type: ignore[no-any-return]
            if answer.status_code != 202:
                raise AssertionError(f"poll answered {answer.status_code}: {answer.text}")
            if time.monotonic() > deadline:
                raise AssertionError("the export did not finish in time")
            time.sleep(min(float(answer.headers.get("Retry-After", "1")), 1.0))

    def download(self, manifest: dict[str, Any], key: str = "output") -> list[dict[str, Any]]:
        headers = self.headers(Accept="application/fhir+ndjson")
        if not manifest.get("requiresAccessToken"):
            headers.pop("Authorization", None)
        resources = []
        for item in manifest.get(key) or []:
            answer = self.http.get(item["url"], headers=headers)
            answer.raise_for_status()
            lines = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
            assert len(lines) == item["count"], item
            assert all(r["resourceType"] == item["type"] for r in lines), item["type"]
            resources.extend(lines)
        return resources

    def export(
        self, path: str, params: dict[str, str] | None = None, *, post: bool = False
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        answer = self.kickoff(path, params, post=post)
        assert answer.status_code == 202, answer.text
        manifest = self.poll(answer.headers["Content-Location"])
        return manifest, self.download(manifest)


def new_key(alg: str) -> RSAKey | ECKey:
    if alg == "RS384":
        return RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex, "alg": alg})
    return ECKey.generate_key("P-384", parameters={"kid": uuid.uuid4().hex, "alg": alg})


def references(node: Any) -> list[str]:
    """Every Reference.reference in a resource (literal references only)."""
    found: list[str] = []
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            found.append(ref)
        for value in node.values():
            found.extend(references(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(references(value))
    return found
