"""Imports every feature's models so Base.metadata is complete (Alembic, tests)."""

from api.auth import models as auth_models
from api.checkins import models as checkins_models
from api.counseling import models as counseling_models
from api.export import models as export_models
from api.idempotency import IdempotencyKey
from api.medications import models as medication_models
from api.ops import models as ops_models
from api.ratelimit import RateCounter
from api.sync import models as sync_models

__all__ = [
    "IdempotencyKey",
    "RateCounter",
    "auth_models",
    "checkins_models",
    "counseling_models",
    "export_models",
    "medication_models",
    "ops_models",
    "sync_models",
]
