"""Alert rules as pure functions: rows in, candidate alerts out, each with a stable episode key.

An alert is a flag for the clinician (never advice to the patient). The evaluation job loads a
look-back window of each consented patient's rows and stores the candidates; the database's
unique (patient, rule, episode_key) makes each episode an alert at most once, however often the
job runs. Episode keys are built only from the rows, so the same data always yields the same key.

Where an episode is a run (of missed doses, of rising days), a run that begins exactly at the
start of the window may have begun before it; it is treated as continuing (it was flagged when
it began, by an earlier run of the job) unless the data show that nothing came before it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from statistics import fmean
from zoneinfo import ZoneInfo

from api.readmodel.rows import (
    CheckinRow,
    CowsRow,
    DoseLog,
    MedicationRow,
    Period,
    ScheduledDose,
    SessionRow,
    SummaryData,
    resolve_doses,
)

RULE_CATEGORY = {
    "severe_withdrawal": "symptoms",
    "rising_trend": "symptoms",
    "checkin_gap": "symptoms",
    "missed_doses": "medications",
    "missed_session": "counseling",
}
RULES = tuple(RULE_CATEGORY)
TREND_SERIES = ("sows", "sows-gossop", "craving")
_LABEL = {"sows": "SOWS total", "sows-gossop": "SOWS-Gossop total", "craving": "Craving"}


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True)
class AlertSettings:
    sows_severe: int = 21
    cows_severe: int = 25
    missed_doses_run: int = 2
    checkin_gap_days: int = 3
    checkin_streak_days: int = 5
    rising_recent_days: int = 3
    rising_baseline_days: int = 7
    rising_ratio: float = 1.5
    rising_min_delta: float = 2.0
    rising_min_recent: int = 2
    rising_min_baseline: int = 3
    on_time_window_minutes: int = 60


@dataclass(frozen=True)
class AlertCandidate:
    rule: str
    episode_key: str
    triggered_at: datetime
    detail: str
    # The period of the events the alert describes (and its detail names): the consent gate
    # judges the alert by these, so it is shown only where the consent's window holds them all.
    events_from: datetime
    events_to: datetime

    @property
    def category(self) -> str:
        return RULE_CATEGORY[self.rule]


@dataclass(frozen=True)
class Window:
    """The look-back window the rows were loaded for, in the patient's zone."""

    start: datetime
    now: datetime
    timezone: str

    @property
    def tz(self) -> ZoneInfo:
        return _zone(self.timezone)

    def local(self, when: datetime) -> datetime:
        return when.astimezone(self.tz)

    def local_date(self, when: datetime) -> date:
        return when.astimezone(self.tz).date()


def _fmt(when: datetime, window: Window) -> str:
    return window.local(when).strftime("%Y-%m-%d %H:%M")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


# --- severe withdrawal: one alert per instrument per local day with a severe reading ----------


def severe_withdrawal(
    checkins: Sequence[CheckinRow],
    cows: Sequence[CowsRow],
    *,
    window: Window,
    settings: AlertSettings,
) -> list[AlertCandidate]:
    readings: list[tuple[str, datetime, int, int]] = [
        ("sows", c.recorded_at, c.total, settings.sows_severe)
        for c in checkins
        if c.instrument == "sows" and c.total is not None and c.total >= settings.sows_severe
    ]
    readings += [
        ("cows", c.assessed_at, c.total, settings.cows_severe)
        for c in cows
        if c.total >= settings.cows_severe
    ]
    first: dict[tuple[str, date], tuple[datetime, int, int]] = {}
    for instrument, when, total, threshold in sorted(readings, key=lambda r: r[1]):
        if not window.start <= when <= window.now:
            continue
        first.setdefault((instrument, window.local_date(when)), (when, total, threshold))
    return [
        AlertCandidate(
            rule="severe_withdrawal",
            episode_key=f"{instrument}:{day.isoformat()}",
            triggered_at=when,
            events_from=when,
            events_to=when,
            detail=f"{instrument.upper()} total {total} at {_fmt(when, window)} "
            f"(flag threshold {threshold} or more).",
        )
        for (instrument, day), (when, total, threshold) in sorted(
            first.items(), key=lambda kv: kv[1][0]
        )
    ]


# --- missed doses: a run of N or more consecutive missed doses of one medication --------------


def missed_doses(
    medications: Sequence[MedicationRow],
    scheduled: Sequence[ScheduledDose],
    logs: Sequence[DoseLog],
    *,
    window: Window,
    settings: AlertSettings,
    schedule_starts: Mapping[uuid.UUID, datetime] | None = None,
) -> list[AlertCandidate]:
    """schedule_starts: a medication's first scheduled dose ever; a run that begins at the
    window's first dose is new only when that dose is the medication's first."""
    on_time = timedelta(minutes=settings.on_time_window_minutes)
    period = Period(window.start, window.now + timedelta(microseconds=1), window.timezone)
    data = SummaryData(medications=medications, scheduled_doses=scheduled, dose_logs=logs)
    resolved = resolve_doses(data, period, window=on_time, now=window.now)
    names = {m.id: m.name for m in medications}
    out: list[AlertCandidate] = []
    for med_id, slots in resolved.items():
        settled = [(slot, status) for slot, status in slots if status != "pending"]
        runs: list[list[ScheduledDose]] = []
        current: list[ScheduledDose] = []
        for slot, status in settled:
            if status == "missed":
                current.append(slot)
            elif current:
                runs.append(current)
                current = []
        if current:
            runs.append(current)
        first_ever = (schedule_starts or {}).get(med_id)
        for run in runs:
            if len(run) < settings.missed_doses_run:
                continue
            continuing = run[0] is settled[0][0] and (
                first_ever is None or first_ever < run[0].scheduled_for
            )
            if continuing:
                continue
            nth = run[settings.missed_doses_run - 1]
            out.append(
                AlertCandidate(
                    rule="missed_doses",
                    episode_key=f"{med_id}:{run[0].scheduled_for.astimezone(UTC).isoformat()}",
                    triggered_at=nth.scheduled_for + on_time,
                    # The detail counts every dose of the run, to the last one's window closing.
                    events_from=run[0].scheduled_for,
                    events_to=min(run[-1].scheduled_for + on_time, window.now),
                    detail=f"{len(run)} consecutive scheduled doses of {names.get(med_id, '?')} "
                    f"missed, from {_fmt(run[0].scheduled_for, window)} "
                    f"(flag threshold {settings.missed_doses_run} or more).",
                )
            )
    return sorted(out, key=lambda a: (a.triggered_at, a.episode_key))


# --- a missed counseling session ---------------------------------------------------------------


def missed_sessions(sessions: Sequence[SessionRow], *, window: Window) -> list[AlertCandidate]:
    return [
        AlertCandidate(
            rule="missed_session",
            episode_key=str(s.id),
            triggered_at=s.starts_at,
            events_from=s.starts_at,
            events_to=s.starts_at,
            detail=f"Counseling session ({s.kind}) on {_fmt(s.starts_at, window)} marked missed.",
        )
        for s in sorted(sessions, key=lambda s: s.starts_at)
        if s.attendance == "missed" and window.start <= s.starts_at <= window.now
    ]


# --- no check-in for N days after daily check-ins ---------------------------------------------


def checkin_gaps(
    checkins: Sequence[CheckinRow], *, window: Window, settings: AlertSettings
) -> list[AlertCandidate]:
    times = sorted(c.recorded_at for c in checkins if window.start <= c.recorded_at <= window.now)
    days = {window.local_date(t) for t in times}
    gap = timedelta(days=settings.checkin_gap_days)
    out = []
    # Each check-in followed by a gap (up to the next check-in, or now): the episode is the gap,
    # keyed by the local day of the check-in it follows.
    for i, last in enumerate(times):
        following = times[i + 1] if i + 1 < len(times) else None
        if (following or window.now) - last < gap:
            continue
        last_day = window.local_date(last)
        streak = all(
            last_day - timedelta(days=k) in days for k in range(settings.checkin_streak_days)
        )
        if not streak:
            continue
        # The detail speaks of the whole streak of daily check-ins and of the gap after it.
        streak_from = last_day - timedelta(days=settings.checkin_streak_days - 1)
        first = min(t for t in times if window.local_date(t) >= streak_from)
        out.append(
            AlertCandidate(
                rule="checkin_gap",
                episode_key=last_day.isoformat(),
                triggered_at=last + gap,
                events_from=first,
                events_to=min(last + gap, window.now),
                detail=f"No check-in for {settings.checkin_gap_days} days after "
                f"{settings.checkin_streak_days} or more days of daily check-ins; last check-in "
                f"{_fmt(last, window)}.",
            )
        )
    return out


# --- rising trend: the last N days' mean well above the previous M days' ----------------------


def _series(checkins: Iterable[CheckinRow], name: str) -> list[tuple[datetime, float]]:
    if name == "craving":
        return [(c.recorded_at, float(c.craving)) for c in checkins if c.craving is not None]
    return [
        (c.recorded_at, float(c.total))
        for c in checkins
        if c.instrument == name and c.total is not None
    ]


def rising_on(
    by_day: Mapping[date, list[float]], day: date, settings: AlertSettings
) -> tuple[float, float] | None:
    """(recent mean, baseline mean) when the rising rule holds at the end of `day`, else None."""
    recent = [
        v for k in range(settings.rising_recent_days) for v in by_day.get(day - timedelta(k), [])
    ]
    base_days = range(
        settings.rising_recent_days, settings.rising_recent_days + settings.rising_baseline_days
    )
    baseline = [v for k in base_days for v in by_day.get(day - timedelta(k), [])]
    if len(recent) < settings.rising_min_recent or len(baseline) < settings.rising_min_baseline:
        return None
    recent_mean, base_mean = fmean(recent), fmean(baseline)
    if (
        recent_mean >= base_mean * settings.rising_ratio
        and recent_mean - base_mean >= settings.rising_min_delta
    ):
        return recent_mean, base_mean
    return None


def rising_trends(
    checkins: Sequence[CheckinRow], *, window: Window, settings: AlertSettings
) -> list[AlertCandidate]:
    span = settings.rising_recent_days + settings.rising_baseline_days
    first_day = window.local_date(window.start)
    today = window.local_date(window.now)
    # Only days whose whole look-back lies in the window can be judged.
    first_judged = first_day + timedelta(days=span)
    out = []
    inside = [c for c in checkins if window.start <= c.recorded_at <= window.now]
    for name in TREND_SERIES:
        by_day: dict[date, list[float]] = defaultdict(list)
        for when, value in _series(inside, name):
            by_day[window.local_date(when)].append(value)
        run_start: date | None = None
        day = first_judged
        while day <= today + timedelta(days=1):
            held = rising_on(by_day, day, settings) if day <= today else None
            if held is not None and run_start is None:
                run_start = day
                first_values = held
            if held is None and run_start is not None:
                if run_start != first_judged:  # else it may have begun before the window
                    recent_mean, base_mean = first_values
                    out.append(
                        _rising(
                            name,
                            day=run_start,
                            recent_mean=recent_mean,
                            base_mean=base_mean,
                            window=window,
                            settings=settings,
                        )
                    )
                run_start = None
            day += timedelta(days=1)
    return sorted(out, key=lambda a: (a.triggered_at, a.episode_key))


def _rising(
    name: str,
    *,
    day: date,
    recent_mean: float,
    base_mean: float,
    window: Window,
    settings: AlertSettings,
) -> AlertCandidate:
    day_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=window.tz)
    # The means compare the recent days with the baseline days before them: all of it is shown.
    span = settings.rising_recent_days + settings.rising_baseline_days
    first_day = day - timedelta(days=span - 1)
    return AlertCandidate(
        rule="rising_trend",
        episode_key=f"{name}:{day.isoformat()}",
        triggered_at=min(day_end, window.now),
        events_from=max(
            datetime.combine(first_day, datetime.min.time(), tzinfo=window.tz).astimezone(UTC),
            window.start,
        ),
        events_to=min(day_end, window.now),
        detail=f"{_LABEL[name]}: mean {_num(recent_mean)} over the {settings.rising_recent_days} "
        f"days to {day.isoformat()} against {_num(base_mean)} over the previous "
        f"{settings.rising_baseline_days} days (flag at {_num((settings.rising_ratio - 1) * 100)}% "
        f"higher or more).",
    )


def evaluate(
    data: SummaryData,
    *,
    window: Window,
    settings: AlertSettings,
    categories: Iterable[str],
    schedule_starts: Mapping[uuid.UUID, datetime] | None = None,
) -> list[AlertCandidate]:
    """Every rule whose category is in `categories` (what some active consent shares)."""
    allowed = set(categories)
    out: list[AlertCandidate] = []
    if "symptoms" in allowed:
        out += severe_withdrawal(data.checkins, data.cows, window=window, settings=settings)
        out += rising_trends(data.checkins, window=window, settings=settings)
        out += checkin_gaps(data.checkins, window=window, settings=settings)
    if "medications" in allowed:
        out += missed_doses(
            data.medications,
            data.scheduled_doses,
            data.dose_logs,
            window=window,
            settings=settings,
            schedule_starts=schedule_starts,
        )
    if "counseling" in allowed:
        out += missed_sessions(data.sessions, window=window)
    return out
