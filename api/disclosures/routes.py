"""The patient's accounting of disclosures: GET /v1/disclosures."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.db import get_session
from api.disclosures import services
from api.disclosures.schemas import DisclosurePageSchema
from api.pagination import RangePageArgs
from api.security import auth_required, current_user

blp = Blueprint(
    "disclosures", __name__, url_prefix="/v1", description="The accounting of disclosures"
)


@blp.get("/disclosures")
@auth_required("patient")
@blp.arguments(RangePageArgs, location="query", as_kwargs=True)
@blp.response(200, DisclosurePageSchema)
def list_disclosures(**args: Any) -> Any:
    """Every disclosure of the caller's data: when, to whom, under which consent, what period."""
    return services.list_disclosures(
        get_session(),
        patient_id=current_user().id,
        from_=args["from_"],
        to=args["to"],
        limit=args["limit"],
        cursor=args["cursor"],
    )
