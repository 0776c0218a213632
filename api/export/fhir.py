"""FHIR R4 mapping: pure functions from the contract's output shapes (plain dicts) to resources.

Nothing here touches the database, the app or the clock: callers pass a FhirContext. Every mapping
is documented in docs/fhir.md; tests validate each resource against the fhir.resources models.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

# Derived resource ids (score Observation, Encounter, ...) are uuid5 of the source id in this
# namespace: stable across exports, so a receiver can de-duplicate, and valid `urn:uuid:` URLs.
ID_NAMESPACE = uuid.UUID("6b3f7e0c-58a4-4f0e-9a51-2b7c1d4e9f30")

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
V3_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
PART2_POLICY = "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"

# Contract units that have a UCUM code; the others (tablet, film, ...) are sent as text only,
# because a Quantity with a code must also carry its system (FHIR invariant qty-3).
UCUM_UNITS = {"mg": "mg", "mcg": "ug", "g": "g", "ml": "mL", "l": "L", "ug": "ug", "mL": "mL"}

DAY_CODES = {1: "mon", 2: "tue", 3: "wed", 4: "thu", 5: "fri", 6: "sat", 7: "sun"}

INSTRUMENT_TITLES = {
    "sows": "Subjective Opiate Withdrawal Scale (Handelsman 1987)",
    "sows-gossop": "Short Opiate Withdrawal Scale (Gossop 1990)",
    "cows": "Clinical Opiate Withdrawal Scale (Wesson & Ling 2003)",
}

SYMPTOM_NAMES = (
    "nausea",
    "vomiting",
    "diarrhea",
    "muscle_aches",
    "restlessness",
    "anxiety",
    "insomnia",
    "low_mood",
)

# Consent category -> the FHIR resource types it covers (Consent.provision.class, bulk _type).
CATEGORY_TYPES: dict[str, tuple[str, ...]] = {
    "symptoms": ("QuestionnaireResponse", "Observation"),
    "medications": ("MedicationStatement", "MedicationAdministration"),
    "counseling": ("Appointment", "Encounter"),
}

PURPOSE_CODES = {
    "treatment": ("TREAT", "treatment"),
    "care_coordination": ("CAREMGT", "care management"),
    "patient_request": ("PATRQT", "patient requested"),
}

DOSE_NOT_DONE_REASONS = {
    "skipped": "skipped (reported by the patient)",
    "missed": "missed (no dose logged by the end of its window)",
}

APPOINTMENT_STATUS = {
    "scheduled": "booked",
    "attended": "fulfilled",
    "missed": "noshow",
    "cancelled": "cancelled",
    "rescheduled": "cancelled",
}


@dataclass(frozen=True)
class FhirContext:
    """What the mappings need besides the record: where our code systems live, and the time."""

    base_url: str  # e.g. https://waymark.example/fhir; our CodeSystems live under it
    now: datetime
    # Disclosed copies (a clinician's bulk export) carry the 42 CFR Part 2 security labels.
    disclosed: bool = False
    # The clinician a disclosed copy is for: the only clinician it may name (another clinician
    # recorded in the patient's data would reveal another treating relationship).
    recipient_id: str | None = None
    item_texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def system(self, name: str) -> str:
        return f"{self._base}/CodeSystem/{name}"

    @cached_property
    def _base(self) -> str:
        return self.base_url.rstrip("/")

    @cached_property
    def meta(self) -> dict[str, Any] | None:
        """The resources' meta: the Part 2 security labels on a disclosed copy, else none. One
        dict shared by every resource of the export (nothing mutates a mapped resource)."""
        if not self.disclosed:
            return None
        return {
            "security": [
                {"system": V3_CONFIDENTIALITY, "code": "R", "display": "restricted"},
                {"system": V3_ACT_CODE, "code": "42CFRPart2", "display": "42 CFR Part2"},
                {
                    "system": V3_ACT_CODE,
                    "code": "NORDSCLCD",
                    "display": "no redisclosure without consent directive",
                },
            ]
        }


def derived_id(source_id: Any, role: str) -> str:
    """uuid5(ID_NAMESPACE, "<source id>/<role>") as text, spelled out: building a UUID object
    per derived resource was a measurable share of a bulk export."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + f"{source_id}/{role}".encode(), usedforsecurity=False)
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_NAMESPACE_BYTES = ID_NAMESPACE.bytes


def _ts(value: Any) -> str | None:
    """A FHIR dateTime/instant from an aware datetime or an RFC 3339 string (kept as sent)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _parse_dt(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _parse_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


_CONTAINERS = (list, dict)


def _compact(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop None and empty lists/dicts: FHIR forbids empty elements."""
    # Written for speed (millions of calls in a bulk export): most values are truthy, and only a
    # falsy list or dict is empty; 0, False and "" stay.
    return {k: v for k, v in obj.items() if v is not None and (v or not isinstance(v, _CONTAINERS))}


@lru_cache(maxsize=4096)
def _patient_ref(patient_id: Any) -> dict[str, str]:
    # Shared between the resources of one patient (nothing mutates a mapped resource).
    return {"reference": f"Patient/{patient_id}"}


def _quantity(value: Any, unit: str | None) -> dict[str, Any]:
    qty: dict[str, Any] = {"value": value}
    if unit:
        qty["unit"] = unit
        if unit in UCUM_UNITS:
            qty["system"] = UCUM
            qty["code"] = UCUM_UNITS[unit]
    return qty


# --- Patient ---------------------------------------------------------------------------------


def patient(user: Mapping[str, Any], ctx: FhirContext, *, include_contact: bool = True) -> dict:
    """The account as a Patient; disclosed copies carry the name but no contact details."""
    telecom = None
    if include_contact and user.get("email"):
        telecom = [{"system": "email", "value": user["email"]}]
    return _compact(
        {
            "resourceType": "Patient",
            "id": str(user["id"]),
            "meta": ctx.meta,
            "active": True,
            "name": [{"text": user["display_name"]}] if user.get("display_name") else None,
            "telecom": telecom,
        }
    )


# --- Check-ins -------------------------------------------------------------------------------


def questionnaire_response(
    checkin: Mapping[str, Any], ctx: FhirContext, *, patient_id: Any
) -> dict | None:
    """The instrument answers of a check-in, or None when it used no instrument."""
    instrument = checkin.get("instrument")
    if not instrument:
        return None
    version = checkin.get("instrument_version")
    canonical = f"{ctx.base_url.rstrip('/')}/Questionnaire/{instrument}"
    texts = ctx.item_texts.get(instrument, {})
    items = [
        _answer_item(key, texts.get(key), int(value))
        for key, value in (checkin.get("answers") or {}).items()
    ]
    subject = _patient_ref(patient_id)
    return _compact(
        {
            "resourceType": "QuestionnaireResponse",
            "id": str(checkin["id"]),
            "meta": ctx.meta,
            "questionnaire": f"{canonical}|{version}" if version else canonical,
            "status": "completed",
            "subject": subject,
            "authored": _ts(checkin["recorded_at"]),
            "author": subject,
            "source": subject,
            "item": items,
        }
    )


def _answer_item(link_id: str, text: str | None, value: int) -> dict[str, Any]:
    # Built without _compact: an item per answer, a dozen per check-in.
    if text is None:
        return {"linkId": link_id, "answer": [{"valueInteger": value}]}
    return {"linkId": link_id, "text": text, "answer": [{"valueInteger": value}]}


# Component codes repeat on every check-in: built once and shared (nothing mutates a resource).
@lru_cache(maxsize=1024)
def _item_code(system: str, instrument: str, key: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": f"{instrument}.{key}"}], "text": key}


@lru_cache(maxsize=256)
def _symptom_code(system: str, name: str) -> dict[str, Any]:
    return {
        "coding": [{"system": system, "code": f"symptom.{name}"}],
        "text": f"{name.replace('_', ' ')} (0-10)",
    }


def score_observation(
    checkin: Mapping[str, Any], ctx: FhirContext, *, patient_id: Any
) -> dict | None:
    """The scored instrument: total as the value, one component per item, band as interpretation."""
    instrument = checkin.get("instrument")
    if not instrument:
        return None
    system = ctx.system("instruments")
    components = [
        {
            "code": _item_code(system, instrument, key),
            "valueInteger": int(value),
        }
        for key, value in (checkin.get("answers") or {}).items()
    ]
    severity = checkin.get("severity")
    interpretation = None
    if severity:
        interpretation = [
            {
                "coding": [{"system": ctx.system("severity"), "code": str(severity)}],
                "text": f"{severity} (indicative band)",
            }
        ]
    title = INSTRUMENT_TITLES.get(instrument, instrument)
    subject = _patient_ref(patient_id)
    return _compact(
        {
            "resourceType": "Observation",
            "id": derived_id(checkin["id"], "score"),
            "meta": ctx.meta,
            "status": "final",
            "category": [_survey_category()],
            "code": {
                "coding": [{"system": system, "code": f"{instrument}.total", "display": title}],
                "text": f"{title}: total score",
            },
            "subject": subject,
            "effectiveDateTime": _ts(checkin["recorded_at"]),
            "issued": _ts(checkin.get("created_at")),
            "performer": [subject],
            "valueInteger": int(checkin["total"]) if checkin.get("total") is not None else None,
            "interpretation": interpretation,
            "derivedFrom": [{"reference": f"QuestionnaireResponse/{checkin['id']}"}],
            "component": components,
        }
    )


def _survey_category() -> dict[str, Any]:
    return {
        "coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}],
    }


def ratings_observation(
    checkin: Mapping[str, Any], ctx: FhirContext, *, patient_id: Any
) -> dict | None:
    """Everyday ratings (symptoms 0-10, craving 0-10, sleep hours) and the note, as one
    Observation with a component each; None when the check-in has none of them."""
    system = ctx.system("checkin")
    components: list[dict[str, Any]] = []
    for name, value in (checkin.get("symptoms") or {}).items():
        components.append(
            {
                "code": _symptom_code(system, name),
                "valueInteger": int(value),
            }
        )
    if checkin.get("craving") is not None:
        components.append(
            {
                "code": {
                    "coding": [{"system": system, "code": "craving.nrs-0-10"}],
                    "text": "craving (0-10 numeric rating)",
                },
                "valueInteger": int(checkin["craving"]),
            }
        )
    if checkin.get("sleep_hours") is not None:
        components.append(
            {
                "code": {
                    "coding": [{"system": system, "code": "sleep.hours"}],
                    "text": "hours slept",
                },
                "valueQuantity": {
                    "value": checkin["sleep_hours"],
                    "unit": "h",
                    "system": UCUM,
                    "code": "h",
                },
            }
        )
    note = checkin.get("note")
    if not components and not note:
        return None
    subject = _patient_ref(patient_id)
    return _compact(
        {
            "resourceType": "Observation",
            "id": derived_id(checkin["id"], "ratings"),
            "meta": ctx.meta,
            "status": "final",
            "category": [_survey_category()],
            "code": {
                "coding": [{"system": system, "code": "checkin", "display": "Check-in ratings"}],
                "text": "Self-reported check-in",
            },
            "subject": subject,
            "effectiveDateTime": _ts(checkin["recorded_at"]),
            "issued": _ts(checkin.get("created_at")),
            "performer": [subject],
            "note": [{"text": note}] if note else None,
            "component": components,
        }
    )


def checkin_references(checkin_id: Any) -> list[tuple[str, str]]:
    """(type, id) of every resource checkin_resources can make of a check-in."""
    return [
        ("QuestionnaireResponse", str(checkin_id)),
        ("Observation", derived_id(checkin_id, "score")),
        ("Observation", derived_id(checkin_id, "ratings")),
    ]


def checkin_resources(
    checkin: Mapping[str, Any], ctx: FhirContext, *, patient_id: Any
) -> list[dict]:
    """QuestionnaireResponse + score Observation (if an instrument) + ratings Observation."""
    out = [
        questionnaire_response(checkin, ctx, patient_id=patient_id),
        score_observation(checkin, ctx, patient_id=patient_id),
        ratings_observation(checkin, ctx, patient_id=patient_id),
    ]
    return [r for r in out if r is not None]


# --- Medications and doses -------------------------------------------------------------------


def _medication_concept(medication: Mapping[str, Any]) -> dict[str, Any]:
    coding = None
    if medication.get("rxnorm_code"):
        coding = [{"system": RXNORM, "code": str(medication["rxnorm_code"])}]
    return _compact({"coding": coding, "text": medication["name"]})


def medication_status(medication: Mapping[str, Any], now: datetime) -> str:
    """active | completed (its end date passed) | stopped (archived before its end) | intended."""
    if medication.get("active"):
        return "active"
    end = _parse_date(medication.get("end_date"))
    archived = medication.get("archived_at")
    if archived is not None:
        archived_on = _parse_dt(archived).date()
        if end is None or archived_on < end:
            return "stopped"
        return "completed"
    if end is not None and end < now.date():
        return "completed"
    start = _parse_date(medication.get("start_date"))
    if start is not None and start > now.date():
        return "intended"
    return "stopped"


def _dosage(medication: Mapping[str, Any]) -> dict[str, Any]:
    times = [f"{t}:00" if len(t) == 5 else t for t in medication.get("times") or []]
    days = [DAY_CODES[int(d)] for d in medication.get("days_of_week") or []]
    repeat = _compact({"timeOfDay": times, "dayOfWeek": days})
    if times and not medication.get("as_needed"):
        repeat.update({"frequency": len(times), "period": 1, "periodUnit": "d"})
    parts = [f"{medication['dose']} {medication['unit']}"]
    if times:
        parts.append("at " + ", ".join(medication.get("times") or []))
    if medication.get("as_needed"):
        parts.append("as needed")
    return _compact(
        {
            "text": " ".join(parts),
            "timing": {"repeat": repeat} if repeat else None,
            "asNeededBoolean": bool(medication.get("as_needed")),
            "doseAndRate": [
                {"doseQuantity": _quantity(medication["dose"], medication.get("unit"))}
            ],
        }
    )


def medication_statement(
    medication: Mapping[str, Any], ctx: FhirContext, *, patient_id: Any
) -> dict:
    start = medication.get("start_date")
    end = medication.get("end_date")
    subject = _patient_ref(patient_id)
    return _compact(
        {
            "resourceType": "MedicationStatement",
            "id": str(medication["id"]),
            "meta": ctx.meta,
            "status": medication_status(medication, ctx.now),
            "medicationCodeableConcept": _medication_concept(medication),
            "subject": subject,
            "effectivePeriod": _compact({"start": _ts(start), "end": _ts(end)}) or None,
            "dateAsserted": _ts(medication.get("created_at")),
            "informationSource": subject,
            "dosage": [_dosage(medication)],
        }
    )


def medication_administration(
    dose: Mapping[str, Any],
    medication: Mapping[str, Any],
    ctx: FhirContext,
    *,
    patient_id: Any,
) -> dict:
    """A dose row: completed when taken; not-done when skipped (by the patient) or missed (no
    log by the end of the dose window, recorded by the service); see docs/fhir.md."""
    taken = dose["status"] == "taken"
    when = dose.get("taken_at") if taken else None
    when = when or dose.get("scheduled_for") or dose.get("created_at")
    reason = None
    if not taken:
        reason = [{"text": DOSE_NOT_DONE_REASONS.get(dose["status"], dose["status"])}]
    subject = _patient_ref(patient_id)
    return _compact(
        {
            "resourceType": "MedicationAdministration",
            "id": str(dose["id"]),
            "meta": ctx.meta,
            "status": "completed" if taken else "not-done",
            "statusReason": reason,
            "medicationCodeableConcept": _medication_concept(medication),
            "subject": subject,
            "supportingInformation": [{"reference": f"MedicationStatement/{medication['id']}"}],
            "effectiveDateTime": _ts(when),
            "performer": [{"actor": subject}] if taken else None,
            "note": [{"text": dose["note"]}] if dose.get("note") else None,
            "dosage": {"dose": _quantity(medication["dose"], medication.get("unit"))},
        }
    )


# --- Counseling ------------------------------------------------------------------------------


def _session_period(session: Mapping[str, Any]) -> tuple[str, str]:
    start = _parse_dt(session["starts_at"])
    end = start + timedelta(minutes=int(session.get("duration_minutes") or 0))
    return _ts(session["starts_at"]) or "", end.isoformat()


def appointment(session: Mapping[str, Any], ctx: FhirContext, *, patient_id: Any) -> dict:
    attendance = session.get("attendance") or "scheduled"
    start, end = _session_period(session)
    participants: list[dict[str, Any]] = [
        {"actor": _patient_ref(patient_id) | {"type": "Patient"}, "status": "accepted"}
    ]
    if session.get("provider_name"):
        participants.append(
            {
                "actor": {"type": "Practitioner", "display": session["provider_name"]},
                "status": "accepted",
            }
        )
    if session.get("location"):
        participants.append(
            {"actor": {"type": "Location", "display": session["location"]}, "status": "accepted"}
        )
    kind = session.get("kind") or "other"
    return _compact(
        {
            "resourceType": "Appointment",
            "id": str(session["id"]),
            "meta": ctx.meta,
            "status": APPOINTMENT_STATUS[attendance],
            "cancelationReason": {"text": "rescheduled"} if attendance == "rescheduled" else None,
            "serviceType": [
                {"coding": [{"system": ctx.system("counseling-kind"), "code": kind}], "text": kind}
            ],
            "description": session.get("title"),
            "start": start,
            "end": end,
            "minutesDuration": int(session["duration_minutes"])
            if session.get("duration_minutes")
            else None,
            "created": _ts(session.get("created_at")),
            # Counseling notes never leave under a consent (42 CFR 2.31): own export only.
            "comment": None if ctx.disclosed else session.get("note"),
            "participant": participants,
        }
    )


def encounter(session: Mapping[str, Any], ctx: FhirContext, *, patient_id: Any) -> dict | None:
    """An Encounter for an attended session; None otherwise."""
    if session.get("attendance") != "attended":
        return None
    start, end = _session_period(session)
    kind = session.get("kind") or "other"
    participant = None
    if session.get("provider_name"):
        participant = [
            {"individual": {"type": "Practitioner", "display": session["provider_name"]}}
        ]
    location = None
    if session.get("location"):
        location = [{"location": {"display": session["location"]}}]
    return _compact(
        {
            "resourceType": "Encounter",
            "id": derived_id(session["id"], "encounter"),
            "meta": ctx.meta,
            "status": "finished",
            "class": {"system": V3_ACT_CODE, "code": "AMB", "display": "ambulatory"},
            "type": [
                {"coding": [{"system": ctx.system("counseling-kind"), "code": kind}], "text": kind}
            ],
            "subject": _patient_ref(patient_id),
            "participant": participant,
            "appointment": [{"reference": f"Appointment/{session['id']}"}],
            "period": {"start": start, "end": end},
            "location": location,
        }
    )


def session_references(session_id: Any) -> list[tuple[str, str]]:
    """(type, id) of every resource session_resources can make of a counseling session."""
    return [("Appointment", str(session_id)), ("Encounter", derived_id(session_id, "encounter"))]


def session_resources(
    session: Mapping[str, Any], ctx: FhirContext, *, patient_id: Any
) -> list[dict]:
    out = [
        appointment(session, ctx, patient_id=patient_id),
        encounter(session, ctx, patient_id=patient_id),
    ]
    return [r for r in out if r is not None]


# --- Consent and disclosures -----------------------------------------------------------------

CONSENT_STATUS = {"active": "active", "expired": "inactive", "revoked": "inactive"}


def consent(record: Mapping[str, Any], ctx: FhirContext, *, patient_id: Any) -> dict:
    """A 42 CFR Part 2 consent: scope patient-privacy, a permit provision naming the recipient,
    the purpose, the period (signed until expiry or revocation) and the classes of data."""
    categories = list(record.get("categories") or [])
    end = record.get("revoked_at") or record.get("expires_at")
    purpose_code, purpose_display = PURPOSE_CODES.get(
        record.get("purpose") or "", (None, record.get("purpose"))
    )
    purpose = None
    if purpose_code:
        purpose = [{"system": V3_ACT_REASON, "code": purpose_code, "display": purpose_display}]
    recipient = record.get("recipient") or {}
    recipient_id = record.get("recipient_id") or recipient.get("id")
    actor_ref = _compact(
        {
            "reference": f"Practitioner/{recipient_id}" if recipient_id else None,
            "display": recipient.get("display_name"),
        }
    )
    classes = [
        {"system": RESOURCE_TYPES, "code": rtype}
        for category in categories
        for rtype in CATEGORY_TYPES.get(category, ())
    ]
    codes = [
        {"coding": [{"system": ctx.system("data-category"), "code": c}], "text": c}
        for c in categories
    ]
    subject = _patient_ref(patient_id)
    return _compact(
        {
            "resourceType": "Consent",
            "id": str(record["id"]),
            "meta": ctx.meta,
            "status": CONSENT_STATUS.get(record.get("status") or "active", "inactive"),
            "scope": {
                "coding": [
                    {"system": CONSENT_SCOPE, "code": "patient-privacy", "display": "Privacy"}
                ]
            },
            "category": [
                {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]},
                {
                    "coding": [
                        {
                            "system": V3_ACT_CODE,
                            "code": "IDSCL",
                            "display": "information disclosure",
                        }
                    ]
                },
            ],
            "patient": subject,
            "dateTime": _ts(record.get("signed_at")),
            "performer": [subject],
            "policy": [
                {"authority": "https://www.ecfr.gov", "uri": PART2_POLICY},
            ],
            "provision": _compact(
                {
                    "type": "permit",
                    "period": _compact({"start": _ts(record.get("signed_at")), "end": _ts(end)})
                    or None,
                    "actor": [
                        {
                            "role": {
                                "coding": [
                                    {
                                        "system": V3_PARTICIPATION,
                                        "code": "IRCP",
                                        "display": "information recipient",
                                    }
                                ]
                            },
                            "reference": actor_ref,
                        }
                    ]
                    if actor_ref
                    else None,
                    "purpose": purpose,
                    "class": classes,
                    "code": codes,
                }
            ),
        }
    )


def audit_event(disclosure: Mapping[str, Any], ctx: FhirContext, *, patient_id: Any) -> dict:
    """One row of the accounting of disclosures: who received which categories of which period."""
    recipient = disclosure.get("recipient") or {}
    if not isinstance(recipient, Mapping):
        recipient = {"display_name": str(recipient)}
    recipient_id = disclosure.get("recipient_id") or recipient.get("id")
    who = _compact(
        {
            "reference": f"Practitioner/{recipient_id}" if recipient_id else None,
            "display": recipient.get("display_name"),
        }
    )
    details = [
        {"type": "categories", "valueString": ",".join(disclosure.get("categories") or [])},
    ]
    for key in ("data_from", "data_to", "consent_id"):
        if disclosure.get(key) is not None:
            details.append({"type": key, "valueString": _ts(disclosure[key]) or ""})
    kind = disclosure.get("kind") or "read"
    return _compact(
        {
            "resourceType": "AuditEvent",
            "id": str(disclosure["id"]),
            "meta": ctx.meta,
            "type": {"system": DICOM, "code": "110106", "display": "Export"},
            "subtype": [{"system": ctx.system("disclosure-kind"), "code": kind}],
            "action": "R",
            "recorded": _ts(disclosure["at"]),
            "outcome": "0",
            "agent": [{"who": who or {"display": "recipient"}, "requestor": True}],
            "source": {"observer": {"display": "Waymark"}},
            "entity": [
                {
                    "what": _patient_ref(patient_id),
                    "detail": [d for d in details if d["valueString"]],
                }
            ],
        }
    )


# --- Bundle ----------------------------------------------------------------------------------


def full_url(resource: Mapping[str, Any]) -> str:
    return f"urn:uuid:{resource['id']}"


def bundle_entries(resources: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    for resource in resources:
        yield {"fullUrl": full_url(resource), "resource": resource}


def deleted_bundle(bundle_id: str, references: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A Bulk Data `deleted` line: a transaction Bundle with a DELETE entry per resource."""
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": f"{rtype}/{rid}"}} for rtype, rid in references
        ],
    }


def bundle_header(bundle_id: str, ctx: FhirContext) -> dict[str, Any]:
    """The Bundle without its entries (the streamer writes them between the brackets)."""
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"lastUpdated": ctx.now.isoformat()},
        "type": "collection",
        "timestamp": ctx.now.isoformat(),
    }
