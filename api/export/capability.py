"""The R4 CapabilityStatement served at /fhir/metadata: what this server really offers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.export import fhir

BULK_IG = "http://hl7.org/fhir/uv/bulkdata/ImplementationGuide/hl7.fhir.uv.bulkdata"
EXPORT_OPS = {
    "patient": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
    "group": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
    "system": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
}
SMART_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def capability_statement(
    *, base_url: str, token_url: str, offered: list[str], now: datetime
) -> dict[str, Any]:
    """Only what is implemented: export at three levels, reads of Group, CodeSystem and
    Questionnaire, NDJSON output, SMART Backend Services (and our bearer tokens) for security."""
    reads = {"Group", "CodeSystem", "Questionnaire"}
    resources = []
    for rtype in sorted(set(offered) | reads):
        entry: dict[str, Any] = {"type": rtype}
        if rtype in reads:
            entry["interaction"] = [{"code": "read"}]
        if rtype == "Patient":
            entry["operation"] = [{"name": "export", "definition": EXPORT_OPS["patient"]}]
        if rtype == "Group":
            entry["operation"] = [{"name": "export", "definition": EXPORT_OPS["group"]}]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "id": "waymark",
        "url": f"{fhir.CANONICAL_BASE}/CapabilityStatement/waymark",
        "name": "Waymark",
        "title": "Waymark FHIR Bulk Data server",
        "status": "active",
        "date": now.date().isoformat(),
        "publisher": "Waymark",
        "kind": "instance",
        "implementation": {"description": "Waymark Bulk Data export", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "instantiates": [
            "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data",
        ],
        "implementationGuide": [BULK_IG],
        "rest": [
            {
                "mode": "server",
                "documentation": "Every resource a clinician or a system client receives is "
                "limited to the patients' 42 CFR part 2 consents in force; see docs/fhir.md.",
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [{"system": SMART_SERVICE, "code": "SMART-on-FHIR"}],
                            "text": "SMART Backend Services (client_credentials with a signed "
                            "JWT assertion, RS384 or ES384); people use their Waymark bearer "
                            "token.",
                        }
                    ],
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/"
                            "oauth-uris",
                            "extension": [{"url": "token", "valueUri": token_url}],
                        }
                    ],
                },
                "resource": resources,
                "operation": [{"name": "export", "definition": EXPORT_OPS["system"]}],
            }
        ],
    }
