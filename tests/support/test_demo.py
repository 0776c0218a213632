"""Acceptance: the seeded 6-week taper's summary, every figure recomputed from the raw rows by
plain loops that share no code with api.summaries.compute."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api.readmodel.rows import Period
from api.summaries.compute import SummarySettings, build_summary
from tests.support.demo import DemoPatient, generate_demo

WINDOW_MINUTES = 60
ALL = ("symptoms", "medications", "counseling")


def r2(x: float) -> float:
    return round(x, 2)


def r4(x: float) -> float:
    return round(min(x, 1.0), 4)


def num(x: float) -> float:
    return int(x) if float(x).is_integer() else r2(x)


def summarize(demo: DemoPatient, categories: tuple[str, ...] = ALL) -> dict[str, Any]:
    return build_summary(
        demo.data(),
        patient={"id": "p", "display_name": demo.display_name},
        period=Period(demo.start, demo.end, demo.timezone),
        consent={"id": "c", "categories": list(categories), "purpose": "treatment"},
        generated_at=demo.now,
        now=demo.now,
        notice="NOTICE",
        settings=SummarySettings(on_time_window_minutes=WINDOW_MINUTES, top_symptoms=5),
    )


class Expected:
    """The independent path: local days by hand, statistics by sum()/len()."""

    def __init__(self, demo: DemoPatient) -> None:
        self.demo = demo
        self.tz = ZoneInfo(demo.timezone)
        day = demo.start.astimezone(self.tz).date()
        self.days = []
        while datetime.combine(day, datetime.min.time(), tzinfo=self.tz) < demo.end:
            self.days.append(day)
            day += timedelta(days=1)

    def inside(self, when: datetime) -> bool:
        return self.demo.start <= when < self.demo.end

    def day_of(self, when: datetime) -> date:
        return when.astimezone(self.tz).date()

    def trend(self, points: list[tuple[datetime, float]]) -> dict[str, Any]:
        points = [(w, v) for w, v in points if self.inside(w)]
        per_day: dict[Any, list[float]] = {}
        for when, value in points:
            per_day.setdefault(self.day_of(when), []).append(value)
        values = [v for _, v in points]
        out: dict[str, Any] = {
            "n": len(values),
            "days_with_data": len(per_day),
            "min": num(min(values)) if values else None,
            "mean": r2(sum(values) / len(values)) if values else None,
            "max": num(max(values)) if values else None,
            "daily": [
                {
                    "date": d.isoformat(),
                    "n": len(per_day[d]),
                    "min": num(min(per_day[d])),
                    "mean": r2(sum(per_day[d]) / len(per_day[d])),
                    "max": num(max(per_day[d])),
                }
                for d in sorted(per_day)
            ],
        }
        first = [v for w, v in points if self.day_of(w) in self.days[:7]]
        last = [v for w, v in points if self.day_of(w) in self.days[-7:]]
        two_weeks = len(self.days) >= 14  # else no week change is given
        f = r2(sum(first) / len(first)) if first and two_weeks else None
        la = r2(sum(last) / len(last)) if last and two_weeks else None
        out["first_week_mean"], out["last_week_mean"] = f, la
        out["change"] = r2(la - f) if f is not None and la is not None else None
        return out

    def sections(self) -> dict[str, Any]:
        demo = self.demo
        checkins = [c for c in demo.checkins if self.inside(c.recorded_at)]
        days_with = {self.day_of(c.recorded_at) for c in checkins}
        out: dict[str, Any] = {
            "checkins": {
                "status": "included",
                "category": "symptoms",
                "count": len(checkins),
                "days_with_data": len(days_with),
                "days_in_period": len(self.days),
                "completeness": r4(len(days_with) / len(self.days)),
            }
        }
        withdrawal: dict[str, Any] = {"status": "included", "category": "symptoms"}
        for instrument, high in (("sows", 64), ("sows-gossop", 30)):
            pts = [(c.recorded_at, c.total) for c in demo.checkins if c.instrument == instrument]
            withdrawal[instrument] = {"scale_min": 0, "scale_max": high, **self.trend(pts)}
        out["withdrawal"] = withdrawal
        ratings: dict[str, list[int]] = {}
        for c in checkins:
            for name, value in (c.symptoms or {}).items():
                ratings.setdefault(name, []).append(value)
        ranked = [
            {"name": n, "mean": r2(sum(v) / len(v)), "max": max(v), "n": len(v)}
            for n, v in ratings.items()
        ]
        ranked.sort(key=lambda s: (-s["mean"], s["name"]))
        out["symptoms"] = {
            "status": "included",
            "category": "symptoms",
            "rated_symptoms": len(ranked),
            "top": ranked[:5],
        }
        out["craving"] = {
            "status": "included",
            "category": "symptoms",
            **self.trend(
                [(c.recorded_at, c.craving) for c in demo.checkins if c.craving is not None]
            ),
        }
        out["sleep"] = {
            "status": "included",
            "category": "symptoms",
            **self.trend(
                [(c.recorded_at, c.sleep_hours) for c in demo.checkins if c.sleep_hours is not None]
            ),
        }
        cows = sorted(
            (c for c in demo.cows if self.inside(c.assessed_at)), key=lambda c: c.assessed_at
        )
        out["cows"] = {
            "status": "included",
            "category": "symptoms",
            "count": len(cows),
            "max_total": max((c.total for c in cows), default=None),
            "assessments": [
                {
                    "assessed_at": c.assessed_at.astimezone(self.tz).isoformat(),
                    "total": c.total,
                    "severity": c.severity,
                }
                for c in cows
            ],
        }
        out["medications"] = {"status": "included", "category": "medications", **self.meds()}
        sessions = sorted(
            (s.row for s in demo.sessions if self.inside(s.row.starts_at)),
            key=lambda s: s.starts_at,
        )
        counts = {
            k: len([s for s in sessions if s.attendance == k])
            for k in ("scheduled", "attended", "missed", "cancelled", "rescheduled")
        }
        out["counseling"] = {
            "status": "included",
            "category": "counseling",
            "sessions": len(sessions),
            "counts": counts,
            "attendance_rate": r4(counts["attended"] / (counts["attended"] + counts["missed"])),
            "missed_sessions": [
                {
                    "starts_at": s.starts_at.astimezone(self.tz).isoformat(),
                    "kind": s.kind,
                    "title": s.title,
                }
                for s in sessions
                if s.attendance == "missed"
            ],
        }
        out["alerts"] = {"status": "included", "categories": sorted(ALL), "count": 0, "items": []}
        return out

    def meds(self) -> dict[str, Any]:
        demo, window = self.demo, timedelta(minutes=WINDOW_MINUTES)
        rows = []
        totals: dict[str, int] = {}
        first_day, last_day = self.days[0], self.days[-1]
        for med in demo.medications:
            # Regimens not live in the period (and with no dose logged in it) are left out.
            live = med.start_date <= last_day and (med.end_date or last_day) >= first_day
            logged = any(
                lg.medication_id == med.row.id and self.inside(lg.scheduled_for or lg.taken_at)
                for lg in demo.dose_logs
            )
            if not (live or logged):
                continue
            # The schedule expanded by hand from the regimen (not from demo.scheduled_doses).
            slots = []
            day = med.start_date
            while med.times and day <= (med.end_date or demo.end.date()):
                for hhmm in med.times:
                    h, m = map(int, hhmm.split(":"))
                    when = datetime(day.year, day.month, day.day, h, m, tzinfo=self.tz)
                    if self.inside(when) and when <= demo.now:
                        slots.append(when)
                day += timedelta(days=1)
            statuses = []
            for when in sorted(slots):
                logs = [
                    lg
                    for lg in demo.dose_logs
                    if lg.medication_id == med.row.id and lg.scheduled_for == when
                ]
                if not logs:
                    statuses.append((when, "missed" if when + window <= demo.now else "pending"))
                elif logs[0].status == "skipped":
                    statuses.append((when, "skipped"))
                elif abs(logs[0].taken_at - when) <= window:
                    statuses.append((when, "on_time"))
                else:
                    statuses.append((when, "late"))
            taken = len([s for _, s in statuses if s in ("on_time", "late")])
            sched_days = {self.day_of(w) for w, s in statuses}
            covered = {self.day_of(w) for w, s in statuses if s in ("on_time", "late")}
            longest = run = 0
            for _, s in statuses:
                run = run + 1 if s == "missed" else 0
                longest = max(longest, run)
            counts = {
                "scheduled": len(statuses),
                "taken": taken,
                "taken_on_time": len([s for _, s in statuses if s == "on_time"]),
                "skipped": len([s for _, s in statuses if s == "skipped"]),
                "missed": len([s for _, s in statuses if s == "missed"]),
                "pending": 0,
                "taken_unscheduled": len(
                    [
                        lg
                        for lg in demo.dose_logs
                        if lg.medication_id == med.row.id
                        and lg.scheduled_for is None
                        and self.inside(lg.taken_at)
                    ]
                ),
                "days_scheduled": len(sched_days),
                "days_covered": len(covered),
            }
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
            rows.append(
                (
                    (med.row.name.lower(), min(slots) if slots else demo.end),
                    {
                        "medication_id": str(med.row.id),
                        "name": med.row.name,
                        "dose": num(med.row.dose),
                        "unit": med.row.unit,
                        "as_needed": med.row.as_needed,
                        **counts,
                        "dose_adherence": r4(taken / len(statuses)) if statuses else None,
                        "pdc": r4(len(covered) / len(sched_days)) if sched_days else None,
                        "longest_missed_run": longest,
                        "missed_doses": [
                            w.astimezone(self.tz).isoformat() for w, s in statuses if s == "missed"
                        ],
                    },
                )
            )
        rows.sort(key=lambda r: r[0])
        meds = [r for _, r in rows]
        return {
            "on_time_window_minutes": WINDOW_MINUTES,
            "medications": meds,
            "overall": {
                **totals,
                "dose_adherence": r4(totals["taken"] / totals["scheduled"]),
                "pdc": r4(totals["days_covered"] / totals["days_scheduled"]),
                "longest_missed_run": max(m["longest_missed_run"] for m in meds),
            },
        }


def leaves(node: Any, path: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {
            k: v for key, value in node.items() for k, v in leaves(value, f"{path}.{key}").items()
        }
    if isinstance(node, list):
        return {
            k: v for i, value in enumerate(node) for k, v in leaves(value, f"{path}[{i}]").items()
        }
    return {path: node}


@pytest.mark.parametrize(("seed", "lead_in_weeks"), [(6, 0), (7, 0), (2026, 0), (11, 7)])
def test_every_figure_of_the_demo_summary_recomputed_independently(
    seed: int, lead_in_weeks: int
) -> None:
    demo = generate_demo(seed=seed, lead_in_weeks=lead_in_weeks)
    got = leaves(summarize(demo)["sections"])
    want = leaves(Expected(demo).sections())
    assert set(got) == set(want), set(got) ^ set(want)
    numbers = 0
    for path, value in want.items():
        if isinstance(value, float) or isinstance(got[path], float):
            assert math.isclose(got[path], value, abs_tol=1e-9), path
        else:
            assert got[path] == value, path
        numbers += isinstance(value, int | float) and not isinstance(value, bool)
    assert numbers > 500  # the check covered the whole document, not a sample


def test_the_demo_tells_a_taper_story() -> None:
    """The scenario the docs describe holds: withdrawal rises at the later steps, a severe day,
    a missed-dose weekend, a silent spell, missed sessions, DST inside the period."""
    demo = generate_demo()
    sections = summarize(demo)["sections"]
    sows = sections["withdrawal"]["sows"]
    assert sows["change"] > 5 and sows["max"] >= 21
    assert sections["cows"]["max_total"] >= 25
    assert max(m["longest_missed_run"] for m in sections["medications"]["medications"]) >= 2
    assert sections["counseling"]["counts"]["missed"] == 2
    assert sections["checkins"]["completeness"] < 1
    offsets = {c.recorded_at.utcoffset() for c in demo.checkins}
    assert len(offsets) == 2  # CDT then CST
    assert len(sections["withdrawal"]["sows-gossop"]["daily"]) >= 5  # Sundays


def test_withheld_categories_carry_no_figures_and_no_names() -> None:
    demo = generate_demo()
    doc = summarize(demo, categories=("counseling",))
    for name in ("checkins", "withdrawal", "symptoms", "craving", "sleep", "cows", "medications"):
        section = doc["sections"][name]
        assert section["status"] == "withheld"
        assert set(section) == {"status", "category", "reason"}
        assert "does not cover" in section["reason"]
    assert doc["sections"]["counseling"]["status"] == "included"
    text = str(doc)
    assert "Buprenorphine" not in text and "Lofexidine" not in text
    assert "pdc" not in doc["definitions"] and "attendance_rate" in doc["definitions"]
