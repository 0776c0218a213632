"""A FHIR Bulk Data (v2) client written from the IGs alone: discovery, SMART Backend Services
authorization (a client assertion signed with RS384 or ES384), kick-off, polling, download, and a
check of what came: every resource valid against the FHIR R4 (4.0.1) models of fhir.resources
6.4, every literal reference resolved within the export, every canonical it meets resolved within
the export or on the server.

It knows nothing of the server it talks to beyond the base URL and its client id and key, and
runs in its own environment (tests/bulk_ig/pyproject.toml), never the project's:

    uv run --project tests/bulk_ig --frozen python tests/bulk_ig/client.py --base URL CMD ...

Each command prints one JSON document on stdout; a failed check exits 1 with the reason on
stderr. Commands: discover, token, export, requests, validate (see main()).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import fhir.resources
import requests
from fhir.resources import get_fhir_model_class
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey, import_key

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Terminologies and definitions published elsewhere: their canonicals are not ours to resolve.
EXTERNAL = (
    "http://hl7.org/fhir/",
    "http://terminology.hl7.org/",
    "http://loinc.org",
    "http://snomed.info/",
    "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://unitsofmeasure.org",
    "http://dicom.nema.org/",
    "urn:",
)
RESOLVABLE = ("Questionnaire", "CodeSystem")


class CheckFailed(Exception):
    """What the server sent is not what the IGs promise."""


def validate(resource: dict[str, Any]) -> None:
    """Parse with the R4 model of the resource's type (fhir.resources 6.4 is FHIR 4.0.1)."""
    assert fhir.resources.__fhir_version__ == "4.0.1", fhir.resources.__fhir_version__
    try:
        get_fhir_model_class(resource["resourceType"]).parse_obj(resource)
    except Exception as exc:  # pydantic's ValidationError, or an unknown type (KeyError)
        raise CheckFailed(f"invalid R4 {resource.get('resourceType')}: {exc}") from exc


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
        body: dict[str, Any] = answer.json()
        validate(body)
        return body

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
        if answer.status_code != 200:
            raise CheckFailed(f"token refused: {answer.status_code} {answer.text}")
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
                raise CheckFailed(f"poll answered {answer.status_code}: {answer.text}")
            if time.monotonic() > deadline:
                raise CheckFailed("the export did not finish in time")
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
            if len(lines) != item["count"]:
                raise CheckFailed(f"{item['url']}: {len(lines)} lines, manifest says {item}")
            if any(r["resourceType"] != item["type"] for r in lines):
                raise CheckFailed(f"{item['url']}: not all {item['type']}")
            resources.extend(lines)
        return resources

    def read(self, rtype: str, rid: str) -> dict[str, Any] | None:
        answer = self.http.get(f"{self.base}/{rtype}/{rid}", headers=self.headers())
        return answer.json() if answer.status_code == 200 else None  # type: ignore[no-any-return]

    # --- checks ----------------------------------------------------------------------------

    def check(
        self, resources: list[dict[str, Any]], *, within: bool, asked: set[str] | None = None
    ) -> list[str]:
        """Validate every resource (R4), resolve every literal reference within the export
        (those to a type left out by `_type`, `asked`, excepted) and every canonical within it,
        or (unless `within`) on the server; return the canonicals read from the server. Raises
        CheckFailed on the first failure."""
        present = {f"{r['resourceType']}/{r['id']}" for r in resources}
        if len(present) != len(resources):
            raise CheckFailed("duplicate resources")
        for resource in resources:
            validate(resource)
        dangling = sorted(
            ref
            for ref in {ref for r in resources for ref in references(r)} - present
            if asked is None or ref.split("/")[0] in asked
        )
        if dangling:
            raise CheckFailed(f"references that resolve to nothing in the export: {dangling}")
        by_url = {r["url"]: r for r in resources if r["resourceType"] in RESOLVABLE and "url" in r}
        from_server = []
        for kind, canonical in sorted({c for r in resources for c in canonicals(r)}):
            url, _, version = canonical.partition("|")
            found = by_url.get(url)
            if found is None and not within:
                found = self._read_canonical(kind, url)
                if found is not None:
                    from_server.append(url)
            if found is None or found["resourceType"] != kind:
                raise CheckFailed(f"canonical {canonical} ({kind}) does not resolve")
            if version and found.get("version") != version:
                raise CheckFailed(f"{canonical}: the {kind} is version {found.get('version')}")
            by_url[url] = found
        _check_codes(resources, by_url)
        return from_server

    def _read_canonical(self, kind: str, url: str) -> dict[str, Any] | None:
        """A canonical's resource at {base}/{Type}/{id}, where the server publishes its own."""
        parts = url.rsplit("/", 2)
        if len(parts) < 3 or parts[-2] != kind:
            return None
        found = self.read(kind, parts[-1])
        if found is None or found.get("url") != url:
            return None
        validate(found)
        return found


def canonicals(node: Any) -> list[tuple[str, str]]:
    """(kind, canonical) of every Questionnaire and CodeSystem a resource names, other than the
    well-known terminologies: QuestionnaireResponse.questionnaire and each Coding.system."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        if node.get("resourceType") == "QuestionnaireResponse" and "questionnaire" in node:
            found.append(("Questionnaire", node["questionnaire"]))
        system = node.get("system")
        if isinstance(system, str) and "code" in node and not system.startswith(EXTERNAL):
            found.append(("CodeSystem", system))
        for value in node.values():
            found.extend(canonicals(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(canonicals(value))
    return found


def _codings(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and "code" in node:
            found.append(node)
        for value in node.values():
            found.extend(_codings(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_codings(value))
    return found


def _check_codes(resources: list[dict[str, Any]], by_url: dict[str, dict[str, Any]]) -> None:
    """A code of a complete CodeSystem we resolved is one of its concepts; a response's items
    are the Questionnaire's."""
    for resource in resources:
        for coding in _codings(resource):
            system = by_url.get(coding["system"])
            if system is None or system.get("content") != "complete":
                continue
            if coding["code"] not in {c["code"] for c in system.get("concept", [])}:
                raise CheckFailed(f"{coding['code']} is not in {coding['system']}")
        if resource["resourceType"] == "QuestionnaireResponse":
            questionnaire = by_url[resource["questionnaire"].split("|")[0]]
            links = {i["linkId"] for i in questionnaire.get("item", [])}
            unknown = [i["linkId"] for i in resource.get("item", []) if i["linkId"] not in links]
            if unknown:
                raise CheckFailed(f"items {unknown} are not in {questionnaire['url']}")


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


# --- command line -------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> BulkClient:
    client = BulkClient(base=args.base, token=args.token, scope=args.scope)
    if args.key:
        with open(args.key, encoding="utf-8") as handle:
            jwk = json.load(handle)
        client.key = import_key(jwk)  # type: ignore[assignment]
        client.alg = jwk["alg"]
        client.client_id = args.client_id
    return client


def _discover(client: BulkClient, _args: argparse.Namespace) -> dict[str, Any]:
    return {"capability": client.capability(), "smart": client.smart_configuration()}


def _token(client: BulkClient, args: argparse.Namespace) -> dict[str, Any]:
    token_url = client.smart_configuration()["token_endpoint"]
    if args.foreign_key:  # sign with a key the server never saw
        client.key = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex})
        client.alg = "RS384"
    answer = client.request_token(
        token_url, client.assertion(token_url, jti=args.jti, exp_in=args.exp_in)
    )
    return {"status": answer.status_code, "body": answer.json()}


def _export(client: BulkClient, args: argparse.Namespace) -> dict[str, Any]:
    if client.key is not None:
        client.authorize()
    params = dict(p.split("=", 1) for p in args.param)
    answer = client.kickoff(args.path, params, post=args.post, prefer=args.prefer)
    if answer.status_code != 202:
        raise CheckFailed(f"kick-off answered {answer.status_code}: {answer.text}")
    manifest = client.poll(answer.headers["Content-Location"])
    resources = client.download(manifest)
    errors = client.download(manifest, "error")
    for outcome in errors:
        validate(outcome)
    asked = set(params["_type"].split(",")) if params.get("_type") else None
    from_server = client.check(resources, within=args.within_export, asked=asked)
    return {
        "manifest": manifest,
        "resources": resources,
        "errors": errors,
        "canonicals_from_server": from_server,
    }


def _requests(client: BulkClient, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each request of a JSON list on stdin ({method, path, headers, params, data, outcome,
    resource}); one with `outcome: true` must answer an R4 OperationOutcome in
    application/fhir+json, one with `resource: true` a valid R4 resource."""
    if client.key is not None:
        client.authorize()
    out = []
    for item in json.load(sys.stdin):
        url = item["path"] if "://" in item["path"] else f"{client.base}/{item['path']}"
        headers = item.get("headers", {})
        if item.get("auth", True):
            headers = {**client.headers(), **headers}
        answer = client.http.request(
            item.get("method", "GET"),
            url,
            headers=headers,
            params=item.get("params"),
            data=item.get("data"),
        )
        try:
            body = answer.json()
        except ValueError:
            body = answer.text
        if item.get("outcome"):
            kind = answer.headers.get("Content-Type", "")
            if not kind.startswith("application/fhir+json"):
                raise CheckFailed(f"{item}: answered {answer.status_code} as {kind}")
            if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
                raise CheckFailed(f"{item}: not an OperationOutcome: {answer.text[:300]}")
            validate(body)
        if item.get("resource"):
            if not isinstance(body, dict) or "resourceType" not in body:
                raise CheckFailed(f"{item}: not a resource: {answer.text[:300]}")
            validate(body)
        out.append({"status": answer.status_code, "headers": dict(answer.headers), "body": body})
    return out


def _validate(_client: BulkClient, _args: argparse.Namespace) -> list[str | None]:
    """Each NDJSON line on stdin: None when it is a valid R4 resource, else why not."""
    out: list[str | None] = []
    for line in sys.stdin.read().splitlines():
        try:
            validate(json.loads(line))
            out.append(None)
        except CheckFailed as failure:
            out.append(str(failure))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the FHIR base URL")
    parser.add_argument("--client-id", default="")
    parser.add_argument("--key", help="a file holding the client's private JWK (with alg)")
    parser.add_argument("--token", help="a bearer token to use instead of SMART")
    parser.add_argument("--scope", default="system/*.read")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("discover").set_defaults(run=_discover)
    token = commands.add_parser("token", help="one token request; prints status and body")
    token.add_argument("--jti")
    token.add_argument("--exp-in", type=int, default=240)
    token.add_argument("--foreign-key", action="store_true")
    token.set_defaults(run=_token)
    export = commands.add_parser("export", help="kick-off, poll, download and check")
    export.add_argument("path")
    export.add_argument("--param", action="append", default=[], help="name=value")
    export.add_argument("--post", action="store_true")
    export.add_argument("--prefer", default="respond-async")
    export.add_argument(
        "--within-export",
        action="store_true",
        help="every canonical must resolve within the export, not on the server",
    )
    export.set_defaults(run=_export)
    commands.add_parser("requests").set_defaults(run=_requests)
    commands.add_parser("validate", help="NDJSON on stdin").set_defaults(run=_validate)
    args = parser.parse_args(argv)
    try:
        result = args.run(_client(args), args)
    except CheckFailed as failure:
        sys.stderr.write(f"CHECK FAILED: {failure}\n")
        return 1
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
