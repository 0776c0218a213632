"""Imports every feature's models so Base.metadata is complete (Alembic, tests)."""

from api.auth import models as auth_models
from api.counseling import models as counseling_models
from api.export import models as export_models
from api.medications import models as medication_models
from api.ops import models as ops_models
from api.ratelimit import RateCounter
from api.sync import models as sync_models

__all__ = [
    "RateCounter",
    "auth_models",
    "counseling_models",
    "export_models",
    "medication_models",
    "ops_models",
    "sync_models",
]
