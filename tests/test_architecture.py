"""The shape of the code: features import only features below them (docs/architecture.md), with
no cycles, function-level imports included."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.imports import against_order, cycles, import_graph

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A unit (api/<name>.py or api/<name>/) may import units of lower layers only;
# within a layer, none imports another. Keep docs/architecture.md in step with this list.
ORDER: tuple[tuple[str, ...], ...] = (
    ("version",),  # the release number: config and /healthz read it
    ("config", "categories", "errors", "headers", "localtime", "openapi", "parsing"),
    ("db", "observability"),
    ("dml", "ops"),
    ("fields", "ratelimit"),
    ("pagination", "security"),
    ("sync", "idempotency"),
    ("offline",),
    # features
    ("auth", "instruments", "devices", "crisis"),
    ("checkins", "medications", "counseling"),
    ("notifications",),
    ("reminders", "inbox"),
    ("agenda",),
    ("consent",),
    ("disclosures",),
    ("audit",),
    ("cows",),
    ("readmodel",),
    ("alerts",),
    ("summaries",),
    ("clinician",),
    ("smart",),
    ("export",),
    ("account",),
    ("clinic",),  # the dashboard: pages over every feature above
    # the application: wiring, commands, the scheduler process
    ("cli", "all_models"),
    ("api",),
    ("jobs",),
)


def graph(root: Path = ROOT) -> dict[str, dict[str, set[str]]]:
    return import_graph(root, "api", whole=["jobs"])


def test_features_import_only_features_below_them() -> None:
    assert against_order(graph(), ORDER) == []


def test_there_are_no_import_cycles_between_units() -> None:
    assert cycles(graph()) == []


def test_every_unit_has_its_place_in_the_order() -> None:
    listed = {unit for layer in ORDER for unit in layer}
    units = {p.stem for p in (ROOT / "api").iterdir() if not p.name.startswith(("_", "."))}
    units = {u for u in units if (ROOT / "api" / u).is_dir() or (ROOT / "api" / f"{u}.py").exists()}
    assert units | {"api", "jobs"} <= listed
    assert len(listed) == sum(len(layer) for layer in ORDER)  # no unit twice


def test_the_request_layer_does_not_import_auth_services() -> None:
    # security sits below auth: auth registers its login lookup with it (security.use_auth).
    assert "auth" not in graph().get("security", {})


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    """Plant a function-level import that closes a cycle into a copy of the code: both checks
    fail and name it; an import under TYPE_CHECKING is not counted."""
    for package in ("api", "jobs"):
        shutil.copytree(ROOT / package, tmp_path / package)
    assert against_order(graph(tmp_path), ORDER) == []

    typing_only = tmp_path / "api" / "medications" / "schedule.py"
    typing_only.write_text(
        typing_only.read_text()
        + "\nif TYPE_CHECKING:\n    from api.reminders.models import ReminderRule\n"
    )
    assert against_order(graph(tmp_path), ORDER) == []

    planted = tmp_path / "api" / "medications" / "services.py"
    planted.write_text(
        planted.read_text() + "\n\ndef _later() -> None:\n    from api.reminders import services\n"
    )
    edges = graph(tmp_path)
    assert any({"medications", "reminders"} <= set(cycle) for cycle in cycles(edges))
    assert "medications -> reminders (in api.medications.services)" in against_order(edges, ORDER)


def test_a_unit_left_out_of_the_order_is_reported(tmp_path: Path) -> None:
    (tmp_path / "api" / "newfeature").mkdir(parents=True)
    (tmp_path / "api" / "newfeature" / "__init__.py").write_text("from api import db\n")
    (tmp_path / "api" / "db.py").write_text("")
    (tmp_path / "jobs").mkdir()
    assert against_order(graph(tmp_path), ORDER) == ["newfeature: not in the declared order"]
