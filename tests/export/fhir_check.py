"""Validate FHIR resources with the fhir.resources models, plus the R4 required value sets that the
models leave as free `code` strings (status and the like)."""

from __future__ import annotations

import re
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from api.export.fhir import CANONICAL_BASE

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# R4 required bindings for the codes we set (hl7.org/fhir/R4 value sets).
R4_CODES: dict[tuple[str, str], set[str]] = {
    ("QuestionnaireResponse", "status"): {
        "in-progress",
        "completed",
        "amended",
        "entered-in-error",
        "stopped",
    },
    ("Observation", "status"): {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
    ("MedicationStatement", "status"): {
        "active",
        "completed",
        "entered-in-error",
        "intended",
        "stopped",
        "on-hold",
        "unknown",
        "not-taken",
    },
    ("MedicationAdministration", "status"): {
        "in-progress",
        "not-done",
        "on-hold",
        "completed",
        "entered-in-error",
        "stopped",
        "unknown",
    },
    ("Appointment", "status"): {
        "proposed",
        "pending",
        "booked",
        "arrived",
        "fulfilled",
        "cancelled",
        "noshow",
        "entered-in-error",
        "checked-in",
        "waitlist",
    },
    ("Encounter", "status"): {
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
    ("Consent", "status"): {
        "draft",
        "proposed",
        "active",
        "rejected",
        "inactive",
        "entered-in-error",
    },
    ("AuditEvent", "action"): {"C", "R", "U", "D", "E"},
    ("AuditEvent", "outcome"): {"0", "4", "8", "12"},
    ("Bundle", "type"): {
        "document",
        "message",
        "transaction",
        "transaction-response",
        "batch",
        "batch-response",
        "history",
        "searchset",
        "collection",
    },
}


def fhir_errors(resource: dict[str, Any]) -> list[str]:
    """Every problem found with one resource; [] when it is valid."""
    errors: list[str] = []
    rtype = resource.get("resourceType")
    try:
        model = get_fhir_model_class(str(rtype))
        model.model_validate(resource)
    except Exception as exc:  # pydantic's ValidationError or an unknown type
        errors.append(f"{rtype}: {exc}")
        return errors
    if not ID_RE.match(str(resource.get("id", ""))):
        errors.append(f"{rtype}: bad id {resource.get('id')!r}")
    for (typ, element), allowed in R4_CODES.items():
        if typ == rtype and element in resource and resource[element] not in allowed:
            errors.append(f"{rtype}.{element}: {resource[element]!r} not in the R4 value set")
    errors.extend(_invariants(resource))
    return errors


def _invariants(resource: dict[str, Any]) -> list[str]:
    """The R4 invariants the models do not check, for the resources we emit."""
    rtype = resource["resourceType"]
    out: list[str] = []
    if rtype == "Appointment":
        # app-2/app-3: start and end together; only proposed/cancelled may lack them.
        if ("start" in resource) != ("end" in resource):
            out.append("Appointment app-2: start and end together")
        if "start" not in resource and resource["status"] not in ("proposed", "cancelled"):
            out.append("Appointment app-3")
    if rtype == "Consent":
        if not (resource.get("policy") or resource.get("policyRule")):
            out.append("Consent ppc-1: policy or policyRule")
        scope = resource["scope"]["coding"][0]["code"]
        if scope == "patient-privacy" and "patient" not in resource:
            out.append("Consent ppc-2: privacy needs a patient")
    if rtype == "Observation":
        for comp in resource.get("component", []):
            if not any(k.startswith("value") for k in comp) and "dataAbsentReason" not in comp:
                out.append("Observation component without value")
    for qty in _quantities(resource):
        if "code" in qty and "system" not in qty:
            out.append("qty-3: a coded unit needs a system")
    return out


def _quantities(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("valueQuantity", "doseQuantity", "dose") and isinstance(value, dict):
                found.append(value)
            found.extend(_quantities(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_quantities(item))
    return found


def our_canonicals(node: Any) -> set[str]:
    """Every Questionnaire or CodeSystem canonical of ours a resource names (without |version)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for value in node.values():
            found |= our_canonicals(value)
    elif isinstance(node, list):
        for value in node:
            found |= our_canonicals(value)
    elif isinstance(node, str) and node.startswith(
        (f"{CANONICAL_BASE}/Questionnaire/", f"{CANONICAL_BASE}/CodeSystem/")
    ):
        found.add(node.split("|")[0])
    return found


def unresolved_canonicals(resources: list[dict[str, Any]]) -> set[str]:
    """Our canonicals named by the resources that no resource among them has as its `url`."""
    urls = {r.get("url") for r in resources}
    named = set().union(*(our_canonicals(r) for r in resources)) if resources else set()
    return named - urls


def bundle_errors(bundle: dict[str, Any]) -> list[str]:
    """Validate the Bundle and every entry's resource; fullUrls unique (bdl-7); every
    Questionnaire and CodeSystem canonical of ours that an entry names is an entry too."""
    errors = fhir_errors(bundle)
    seen: set[str] = set()
    for entry in bundle.get("entry", []):
        if entry["fullUrl"] in seen:
            errors.append(f"duplicate fullUrl {entry['fullUrl']}")
        seen.add(entry["fullUrl"])
        errors.extend(fhir_errors(entry["resource"]))
    resources = [entry["resource"] for entry in bundle.get("entry", [])]
    errors.extend(f"unresolved canonical {url}" for url in sorted(unresolved_canonicals(resources)))
    return errors
