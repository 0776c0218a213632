"""Every query parameter the server accepts is declared in the served document (issue 13 item 2),
and nothing is declared that no code reads. Two sources of what the code reads:

- the query schemas routes parse (flask-smorest/webargs `@blp.arguments(..., location="query")`):
  each field's wire name, read from the schema object itself, not from the document;
- any raw `request.args` / `request.values` read under api/ (found by walking the source): each must
  be one this file knows, whose names the document declares for the operations that read them.

The server-rendered dashboard (api/clinic/) is not part of the API document and is left out."""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema

from api.export.services import SUPPORTED_PARAMS

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"get", "post", "put", "patch", "delete"}

# Raw reads of the query string: (module, function) -> (operationIds, names read).
KNOWN_RAW_READS: dict[tuple[str, str], tuple[set[str], set[str]]] = {
    # Bulk Data kick-off: the query is read whole and parsed by services.parse_kickoff.
    ("api/export/routes.py", "_kickoff_params"): (
        {
            "start_patient_export_post",
            "start_patient_export",
            "start_group_export_post",
            "start_group_export",
            "start_system_export_post",
            "start_system_export",
        },
        set(SUPPORTED_PARAMS),
    ),
}


@pytest.fixture(scope="module")
def doc(app: Flask) -> dict[str, Any]:
    with app.test_client() as client:
        return client.get("/openapi.json").get_json()


def _declared(doc: dict[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for item in doc["paths"].values():
        for method, op in item.items():
            if method in METHODS:
                params = [*item.get("parameters", []), *op.get("parameters", [])]
                out[op["operationId"]] = {p["name"] for p in params if p["in"] == "query"}
    return out


def _wire_names(schema: Schema | type[Schema]) -> set[str]:
    instance = schema() if isinstance(schema, type) else schema
    return {
        field.data_key or name for name, field in instance.fields.items() if not field.dump_only
    }


def _parsed(app: Flask, doc: dict[str, Any]) -> dict[str, set[str]]:
    """operationId -> the query names its view's schemas parse (every view in the document)."""
    by_endpoint: dict[str, set[str]] = {}
    for endpoint, view in app.view_functions.items():
        arguments = getattr(view, "_apidoc", {}).get("arguments", {})
        names: set[str] = set()
        for param in arguments.get("parameters", []):
            if param.get("in") == "query":
                names |= _wire_names(param["schema"])
        by_endpoint[endpoint] = names
    out: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) & {m.upper() for m in METHODS}:
            op = doc["paths"].get(path, {}).get(method.lower())
            if op is not None:
                out[op["operationId"]] = by_endpoint.get(rule.endpoint, set())
    return out


def _gaps(app: Flask, doc: dict[str, Any]) -> dict[str, tuple[set[str], set[str]]]:
    """operationId -> (names read, names declared) wherever the two differ."""
    declared = _declared(doc)
    parsed = _parsed(app, doc)
    for ops, names in KNOWN_RAW_READS.values():
        for op in ops:
            parsed[op] = parsed.get(op, set()) | names
    assert set(parsed) == set(declared)
    return {op: (parsed[op], declared[op]) for op in declared if parsed[op] != declared[op]}


def test_every_parsed_query_parameter_is_declared_and_nothing_more(
    app: Flask, doc: dict[str, Any]
) -> None:
    assert not _gaps(app, doc)
    assert _parsed(app, doc)["get_changes"] == {"since", "limit"}  # read from the schema
    assert _parsed(app, doc)["get_patient_summary"] == {"from", "to", "format"}  # wire names

    # The audit bites both ways: a parameter left out, and one declared that nothing reads.
    sync = doc["paths"]["/v1/sync"]["get"]
    mutated = copy.deepcopy(doc)
    mutated["paths"]["/v1/sync"]["get"]["parameters"] = [
        p for p in sync["parameters"] if p["name"] != "since"
    ]
    assert set(_gaps(app, mutated)) == {"get_changes"}
    mutated = copy.deepcopy(doc)
    mutated["paths"]["/v1/agenda"]["get"]["parameters"].append(
        {"in": "query", "name": "zone", "schema": {"type": "string"}}
    )
    assert set(_gaps(app, mutated)) == {"get_agenda"}


def _raw_reads(source: str) -> list[tuple[str, int]]:
    """(enclosing function, line) of every `request.args` / `request.values` in a module."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = (
                child.name
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                else function
            )
            if (
                isinstance(child, ast.Attribute)
                and child.attr in {"args", "values"}
                and isinstance(child.value, ast.Name)
                and child.value.id == "request"
            ):
                found.append((function, child.lineno))
            visit(child, inner)

    visit(ast.parse(source), "<module>")
    return found


def test_raw_query_reads_are_known() -> None:
    seen: set[tuple[str, str]] = set()
    unknown = []
    for path in sorted((ROOT / "api").rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        if module.startswith("api/clinic/"):
            continue
        for function, line in _raw_reads(path.read_text()):
            if (module, function) in KNOWN_RAW_READS:
                seen.add((module, function))
            else:
                unknown.append(f"{module}:{line} in {function}")
    assert not unknown, f"declare these query reads (KNOWN_RAW_READS and the document): {unknown}"
    assert seen == set(KNOWN_RAW_READS), "a known raw read is gone: drop it from the table"


def test_the_audit_finds_raw_reads() -> None:
    source = "def f():\n    x = request.args.get('q')\n\ndef g():\n    return request.values['n']\n"
    assert _raw_reads(source) == [("f", 2), ("g", 5)]
