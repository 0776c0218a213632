"""Shapes of regimens, dose logs and adherence (contract: "Medications and doses")."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from api.fields import AwareDateTime, BoundedDate, LocalTime, StrictSchema, instant
from api.medications.models import UNITS
from api.pagination import PageArgs, RangePageArgs, page_schema

MAX_TIMES_PER_DAY = 24
NOTE_MAX = 2000


def regimen_errors(values: dict[str, Any]) -> dict[str, list[str]]:
    """Rules across fields of a regimen; used on create and on the merged result of a PATCH."""
    errors: dict[str, list[str]] = {}
    times = values.get("times") or []
    if len(set(times)) != len(times):
        errors["times"] = ["Dose times must be distinct."]
    elif values.get("as_needed") and times:
        errors["times"] = ["An as-needed regimen has no dose times; send an empty list."]
    elif not values.get("as_needed") and not times:
        errors["times"] = ["Give at least one dose time, or set as_needed."]
    days = values.get("days_of_week")
    if days is not None:
        if not days:
            errors["days_of_week"] = ["Give at least one day, or omit it for every day."]
        elif len(set(days)) != len(days):
            errors["days_of_week"] = ["Days must be distinct."]
    start, end = values.get("start_date"), values.get("end_date")
    if start is not None and end is not None and end < start:
        errors["end_date"] = ["end_date must not be before start_date."]
    return errors


def normalise_regimen(values: dict[str, Any]) -> dict[str, Any]:
    if values.get("times") is not None:
        values["times"] = sorted(values["times"])
    if values.get("days_of_week") is not None:
        values["days_of_week"] = sorted(values["days_of_week"])
    return values


def _name(*, required: bool = False) -> fields.String:
    return fields.String(
        required=required,
        validate=[validate.Length(min=1, max=200), validate.Regexp(r"\S", error="Give a name.")],
        metadata={"description": "As the user names it (any substance; never advice)."},
    )


_DOSE: dict[str, Any] = {
    "validate": validate.Range(min=0, min_inclusive=False, max=1_000_000),
    "metadata": {"description": "Amount per dose, > 0, in `unit`."},
}
_UNIT: dict[str, Any] = {"validate": validate.OneOf(UNITS)}
_TIMES: dict[str, Any] = {
    "validate": validate.Length(max=MAX_TIMES_PER_DAY),
    "metadata": {"description": "Local HH:MM dose times (distinct; answered sorted)."},
}
_DAYS: dict[str, Any] = {
    "allow_none": True,
    "validate": validate.Length(max=7),
    "metadata": {"description": "ISO weekdays, 1 = Monday ... 7; null or omitted = every day."},
}
_RXNORM: dict[str, Any] = {
    "allow_none": True,
    "validate": validate.Regexp(r"^\d{1,10}$", error="An RxNorm code is 1-10 digits."),
}


class MedicationCreateSchema(StrictSchema):
    id = fields.UUID(load_default=None)
    name = _name(required=True)
    dose = fields.Float(required=True, **_DOSE)
    unit = fields.String(required=True, **_UNIT)
    times = fields.List(LocalTime(), load_default=list, **_TIMES)
    days_of_week = fields.List(
        fields.Integer(validate=validate.Range(min=1, max=7)), load_default=None, **_DAYS
    )
    start_date = BoundedDate(required=True)
    end_date = BoundedDate(load_default=None, allow_none=True)
    as_needed = fields.Boolean(load_default=False)
    rxnorm_code = fields.String(load_default=None, **_RXNORM)

    @validates_schema
    def _rules(self, data: dict[str, Any], **_kw: Any) -> None:
        errors = regimen_errors(data)
        if errors:
            raise ValidationError(errors)

    @post_load
    def _normalise(self, data: dict[str, Any], **_kw: Any) -> dict[str, Any]:
        return normalise_regimen(data)


class MedicationPatchSchema(StrictSchema):
    name = _name()
    dose = fields.Float(**_DOSE)
    unit = fields.String(**_UNIT)
    times = fields.List(LocalTime(), **_TIMES)
    days_of_week = fields.List(fields.Integer(validate=validate.Range(min=1, max=7)), **_DAYS)
    start_date = BoundedDate()
    end_date = BoundedDate(allow_none=True)
    as_needed = fields.Boolean()
    rxnorm_code = fields.String(**_RXNORM)


class _ActiveAt(fields.Boolean):
    """`Medication.is_active` at the instant the route passed in (fields.judged_at)."""

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = None) -> Any:
        return obj.is_active(instant())


class MedicationSchema(Schema):
    id = fields.UUID(dump_only=True)
    name = fields.String(dump_only=True)
    dose = fields.Float(dump_only=True)
    unit = fields.String(dump_only=True)
    times = fields.List(fields.String(), dump_only=True)
    days_of_week = fields.List(fields.Integer(), dump_only=True, allow_none=True)
    start_date = fields.Date(dump_only=True)
    end_date = fields.Date(dump_only=True, allow_none=True)
    as_needed = fields.Boolean(dump_only=True)
    rxnorm_code = fields.String(dump_only=True, allow_none=True)
    active = _ActiveAt(
        dump_only=True,
        metadata={"description": "Not archived and today (user's zone) within the dates."},
    )
    archived_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class MedicationListArgs(PageArgs):
    include_archived = fields.Boolean(load_default=False)


MedicationPageSchema = page_schema(MedicationSchema, "MedicationPage")


class DoseCreateSchema(StrictSchema):
    id = fields.UUID(load_default=None)
    status = fields.String(required=True, validate=validate.OneOf(("taken", "skipped")))
    scheduled_for = AwareDateTime(
        load_default=None,
        allow_none=True,
        metadata={"description": "The scheduled dose this answers; omit for as-needed."},
    )
    taken_at = AwareDateTime(
        load_default=None, allow_none=True, metadata={"description": "Required when taken."}
    )
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=NOTE_MAX))

    @validates_schema
    def _taken_at(self, data: dict[str, Any], **_kw: Any) -> None:
        if data.get("status") == "taken" and data.get("taken_at") is None:
            raise ValidationError("Say when the dose was taken.", "taken_at")
        if data.get("status") == "skipped" and data.get("taken_at") is not None:
            raise ValidationError("Only a taken dose has taken_at.", "taken_at")


class DosePatchSchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(("taken", "skipped")))
    taken_at = AwareDateTime(allow_none=True)
    note = fields.String(allow_none=True, validate=validate.Length(max=NOTE_MAX))


class DoseSchema(Schema):
    id = fields.UUID(dump_only=True)
    medication_id = fields.UUID(dump_only=True)
    status = fields.String(dump_only=True, metadata={"description": "taken, skipped or missed"})
    source = fields.String(
        dump_only=True,
        metadata={"description": "user (logged) or system (a missed dose the service recorded)"},
    )
    scheduled_for = fields.AwareDateTime(dump_only=True, allow_none=True)
    taken_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    note = fields.String(dump_only=True, allow_none=True)
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)


class DoseListArgs(RangePageArgs):
    medication_id = fields.UUID(load_default=None)


DosePageSchema = page_schema(DoseSchema, "DosePage")


class AdherenceArgs(StrictSchema):
    from_ = AwareDateTime(
        data_key="from", load_default=None, metadata={"description": "Default: `to` - 30 days."}
    )
    to = AwareDateTime(load_default=None, metadata={"description": "Default: now."})


class AdherenceCountsSchema(Schema):
    scheduled = fields.Integer(
        metadata={"description": "Scheduled doses logged, or unlogged once their window passed."}
    )
    taken = fields.Integer()
    taken_on_time = fields.Integer()
    skipped = fields.Integer()
    missed = fields.Integer()
    dose_adherence = fields.Float(
        allow_none=True,
        metadata={
            "description": "Dose adherence: taken / scheduled (0-1, 4 places), doses due in the "
            "period that were taken, whether on time or not (`taken_on_time` counts those "
            "within `on_time_window_minutes`). Null when nothing was scheduled."
        },
    )
    pdc = fields.Float(
        allow_none=True,
        metadata={
            "description": "Proportion of days covered (pharmacy-quality definition), per "
            "medication: days_covered / pdc_days (0-1, 4 places); a taken dose covers its day "
            "and the days until the next scheduled dose day. Null for as-needed regimens and "
            "when nothing was scheduled. See docs/medications.md."
        },
    )
    pdc_days = fields.Integer(
        allow_none=True,
        metadata={
            "description": "PDC's denominator: days from the first scheduled day in the period "
            "to its last settled day."
        },
    )
    days_scheduled = fields.Integer()
    days_covered = fields.Integer(
        metadata={"description": "Days a taken dose covered (it covers until the next dose day)."}
    )


class OverallAdherenceSchema(AdherenceCountsSchema):
    pdc = fields.Float(
        allow_none=True,
        metadata={
            "description": "Always null: PDC is per medication and is never "
            "pooled across unrelated drugs (pharmacy-quality definition). Read each "
            "medication's `pdc`; `dose_adherence` here pools the scheduled regimens' doses."
        },
    )
    pdc_days = fields.Integer(allow_none=True, metadata={"description": "Always null, as `pdc`."})


class MedicationAdherenceSchema(AdherenceCountsSchema):
    medication_id = fields.UUID()
    name = fields.String()
    as_needed = fields.Boolean(metadata={"description": "Listed, not scored: ratios are null."})


class AdherenceSchema(Schema):
    from_ = fields.AwareDateTime(data_key="from", attribute="from")
    to = fields.AwareDateTime()
    on_time_window_minutes = fields.Integer()
    medications = fields.List(fields.Nested(MedicationAdherenceSchema))
    overall = fields.Nested(
        OverallAdherenceSchema,
        metadata={
            "description": "The scheduled (not as-needed) regimens' dose counts summed, and "
            "dose_adherence over them; pdc and pdc_days are always null."
        },
    )
