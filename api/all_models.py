"""Imports every feature's models so Base.metadata is complete (Alembic, tests)."""

from api.auth import models as auth_models
from api.export import models as export_models
from api.ops import models as ops_models
from api.ratelimit import RateCounter
from api.sync import models as sync_models

__all__ = ["RateCounter", "auth_models", "export_models", "ops_models", "sync_models"]
