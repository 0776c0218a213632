"""Charts for the summary, drawn server-side by matplotlib: SVG for the HTML page, PNG for the PDF.

matplotlib rather than pygal: it is heavier (about 60 MB of wheels with numpy), but its SVG is
self-contained (text drawn as paths, no CSS or JavaScript, the same in every browser and in
print) and the same figure renders to PNG for the PDF; pygal's SVG relies on CSS/JS that fpdf2
cannot draw, so the PDF would need a second chart implementation. Only the object API is used
(Figure, no pyplot): no global state, safe in threaded workers. Imported lazily by the renderers,
so the API and the jobs do not pay for it unless a chart is drawn.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # no display; before any backend is touched
from matplotlib.dates import DateFormatter, DayLocator, WeekdayLocator, date2num
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

INK = "#1f2937"
BLUE = "#2563eb"
ORANGE = "#d97706"
GREEN = "#059669"
GREY = "#9ca3af"
_RC: dict[RcKeyType, Any] = {
    "font.size": 9,
    "axes.edgecolor": GREY,
    "axes.labelcolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "svg.fonttype": "path",
    "svg.hashsalt": "waymark",  # deterministic ids: the same summary draws the same SVG
    # Labels hold user text (medication names): "$\\foo$" must be drawn as typed, not parsed as
    # mathtext (an unknown command was a 500) nor handed to LaTeX.
    "text.parse_math": False,
    "text.usetex": False,
}


def _daily(trend: Mapping[str, Any]) -> tuple[list[float], list[float], list[float], list[float]]:
    # Days as matplotlib date numbers (what its date converter makes of dates anyway): its
    # signatures take numbers, not dates. The axis becomes a date axis in _time_axis.
    days = [float(x) for x in date2num([date.fromisoformat(d["date"]) for d in trend["daily"]])]
    return (
        days,
        [d["min"] for d in trend["daily"]],
        [d["mean"] for d in trend["daily"]],
        [d["max"] for d in trend["daily"]],
    )


def _figure(height: float = 2.4) -> Figure:
    fig = Figure(figsize=(7.2, height), layout="constrained")
    fig.patch.set_alpha(0)
    return fig


def _time_axis(ax: Any, first: date, last: date) -> None:
    span = (last - first).days + 1
    ax.set_xlim(first, last)
    if span <= 16:
        ax.xaxis.set_major_locator(DayLocator())
        ax.xaxis.set_major_formatter(DateFormatter("%a\n%d %b"))
    else:
        ax.xaxis.set_major_locator(WeekdayLocator(byweekday=0, interval=max(1, span // 70)))
        ax.xaxis.set_major_formatter(DateFormatter("%d %b"))
    ax.grid(axis="y", color="#e5e7eb", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)


def trend_figure(
    trend: Mapping[str, Any],
    *,
    title: str,
    ylabel: str,
    period: Mapping[str, Any],
    ylim: tuple[float, float] | None = None,
    color: str = BLUE,
    threshold: float | None = None,
) -> Figure:
    """Daily mean as a line with the day's min-max as a band."""
    fig = _figure()
    ax = fig.add_subplot()
    days, lows, means, highs = _daily(trend)
    ax.fill_between(days, lows, highs, color=color, alpha=0.18, linewidth=0, label="daily min-max")
    ax.plot(days, means, color=color, marker="o", markersize=3, linewidth=1.6, label="daily mean")
    if threshold is not None:
        ax.axhline(threshold, color=ORANGE, linestyle="--", linewidth=1, label="flag threshold")
    if ylim:
        ax.set_ylim(*ylim)
    first = date.fromisoformat(period["first_day"])
    last = date.fromisoformat(period["last_day"])
    _time_axis(ax, first, last)
    ax.set_title(title, loc="left", fontsize=10, color=INK)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize=7, frameon=False, ncols=3)
    return fig


def adherence_figure(medications: list[Mapping[str, Any]]) -> Figure:
    """Dose adherence and PDC per scheduled medication, as horizontal bars (0-100%)."""
    rows = [m for m in medications if m["scheduled"]]
    fig = _figure(height=0.9 + 0.42 * max(1, len(rows)))
    ax = fig.add_subplot()
    labels = [f"{m['name']} {_num(m['dose'])} {m['unit'] or ''}".strip() for m in rows]
    ys = list(range(len(rows)))
    adherence = [100 * (m["dose_adherence"] or 0) for m in rows]
    pdc = [100 * (m["pdc"] or 0) for m in rows]
    ax.barh([y + 0.2 for y in ys], adherence, height=0.38, color=BLUE, label="dose adherence")
    ax.barh([y - 0.2 for y in ys], pdc, height=0.38, color=GREEN, label="PDC")
    ax.axvline(80, color=ORANGE, linestyle="--", linewidth=1, label="80%")
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("%")
    ax.spines[["top", "right"]].set_visible(False)
    fig.legend(loc="outside lower center", fontsize=7, frameon=False, ncols=3)
    ax.set_title("Medications: dose adherence and PDC", loc="left", fontsize=10, color=INK)
    return fig


def _num(value: Any) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def figures(doc: Mapping[str, Any], *, sows_threshold: float | None = None) -> dict[str, Figure]:
    """The charts a summary has data for, by name (only from included sections)."""
    with matplotlib.rc_context(_RC):  # style is read when artists are made
        return _figures(doc, sows_threshold=sows_threshold)


def chart_names(doc: Mapping[str, Any]) -> list[str]:
    """The charts a summary has data for (only from included sections), without drawing any."""
    sections = doc["sections"]
    names = []
    withdrawal = sections["withdrawal"]
    if withdrawal["status"] == "included":
        names += [code for code in ("sows", "sows-gossop") if withdrawal[code]["n"]]
    for name in ("craving", "sleep"):
        if sections[name]["status"] == "included" and sections[name]["n"]:
            names.append(name)
    meds = sections["medications"]
    if meds["status"] == "included" and any(m["scheduled"] for m in meds["medications"]):
        names.append("medications")
    return names


def figure(doc: Mapping[str, Any], name: str, *, sows_threshold: float | None = None) -> Figure:
    """One of `chart_names(doc)`, drawn."""
    with matplotlib.rc_context(_RC):
        return _build(doc, name, sows_threshold=sows_threshold)


def _figures(doc: Mapping[str, Any], *, sows_threshold: float | None) -> dict[str, Figure]:
    return {name: _build(doc, name, sows_threshold=sows_threshold) for name in chart_names(doc)}


_TRENDS: dict[str, tuple[str, str]] = {
    "sows": ("SOWS (Handelsman, 0-64): daily total", BLUE),
    "sows-gossop": ("SOWS-Gossop (0-30): daily total", BLUE),
    "craving": ("Craving (0-10)", ORANGE),
    "sleep": ("Sleep (hours)", GREEN),
}


def _build(doc: Mapping[str, Any], name: str, *, sows_threshold: float | None) -> Figure:
    sections, period = doc["sections"], doc["period"]
    if name == "medications":
        return adherence_figure(sections["medications"]["medications"])
    title, color = _TRENDS[name]
    if name in ("sows", "sows-gossop"):
        trend = sections["withdrawal"][name]
        return trend_figure(
            trend,
            title=title,
            ylabel="total",
            period=period,
            ylim=(0, max(trend["scale_max"] * 0.5, trend["max"] + 2)),
            threshold=sows_threshold if name == "sows" else None,
        )
    ylim = (0, 10.5) if name == "craving" else (0, 12)
    return trend_figure(
        sections[name], title=title, ylabel=name, period=period, ylim=ylim, color=color
    )


def warm_up() -> None:
    """Draw one small dated chart and save it as SVG and PNG. Called by gunicorn's preloading
    master (gunicorn.conf.py) before it forks: each worker then starts with matplotlib, its
    fonts and both backends loaded, so its first summary costs what the second does."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(2, 1))
        ax = fig.add_subplot()
        ax.plot(date2num([date(2026, 1, 1), date(2026, 1, 8)]), [0, 1], marker="o")
        ax.xaxis.set_major_locator(WeekdayLocator())
        ax.xaxis.set_major_formatter(DateFormatter("%b %d"))
        ax.set_title("warm-up")
    to_svg(fig, prefix="warm-up", title="warm-up")
    to_png(fig, dpi=20)


_ID = re.compile(r'id="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)([^")]+)')


def to_svg(fig: Figure, *, prefix: str, title: str) -> str:
    """An inline <svg> element: ids prefixed so several charts can share one page."""
    buf = io.StringIO()
    with matplotlib.rc_context({**_RC, "svg.hashsalt": prefix}):
        fig.savefig(buf, format="svg", metadata={"Date": None})  # no render timestamp
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
    # An accessible name for the chart; the numbers are also in the tables beside it.
    label = html.escape(title, quote=True)
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


def to_png(fig: Figure, *, dpi: int = 160) -> bytes:
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
