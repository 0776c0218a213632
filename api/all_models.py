"""Imports every feature's models so Base.metadata is complete (Alembic, tests)."""

from api.alerts import models as alert_models
from api.audit import models as audit_models
from api.auth import models as auth_models
from api.checkins import models as checkins_models
from api.clinic import models as clinic_models
from api.consent import models as consent_models
from api.counseling import models as counseling_models
from api.cows import models as cows_models
from api.devices import models as devices_models
from api.disclosures import models as disclosure_models
from api.export import models as export_models
from api.export.storage import ExportFile
from api.idempotency import IdempotencyKey
from api.medications import models as medication_models
from api.notifications import models as notifications_models
from api.ops import models as ops_models
from api.ratelimit import RateCounter
from api.reminders import models as reminders_models
from api.summaries import models as summary_models
from api.sync import models as sync_models

__all__ = [
    "ExportFile",
    "IdempotencyKey",
    "RateCounter",
    "alert_models",
    "audit_models",
    "auth_models",
    "checkins_models",
    "clinic_models",
    "consent_models",
    "counseling_models",
    "cows_models",
    "devices_models",
    "disclosure_models",
    "export_models",
    "medication_models",
    "notifications_models",
    "ops_models",
    "reminders_models",
    "summary_models",
    "sync_models",
]
