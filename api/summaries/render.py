"""The summary document (compute.build_summary's dict) as an HTML page or a PDF.

Both carry what the JSON carries at the top: the patient's display name, the period, the
generation time, the consent and the Part 2 redisclosure notice. Pure: a dict in, text or bytes
out; no request, no database.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from jinja2 import Environment, FileSystemLoader, select_autoescape

if TYPE_CHECKING:
    from fpdf.enums import XPos, YPos

TEMPLATES = Path(__file__).with_name("templates")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%".replace(".0%", "%")


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}".rstrip("0").rstrip(".")


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(fmt=_fmt, pct=_pct, signed=_signed)
    return env


def render_html(doc: Mapping[str, Any], *, sows_threshold: float | None = None) -> str:
    from api.summaries import charts  # matplotlib is loaded only when a chart is drawn

    drawn = {
        name: charts.to_svg(fig, prefix=f"c-{name}", title=name)
        for name, fig in charts.figures(doc, sows_threshold=sows_threshold).items()
    }
    empty = dict.fromkeys(("sows", "sows-gossop", "craving", "sleep", "medications"), "")
    return _environment().get_template("summary.html").render(doc=doc, charts=empty | drawn)


def render_fragment(doc: Mapping[str, Any], *, chart_url: Callable[[str], str]) -> str:
    """The summary page's body, for embedding in a page whose CSP allows no inline style: each
    chart is an <img> from `chart_url(name)` (drawing them is most of the cost of the page, so the
    browser fetches them beside it), and the page styles the summary's classes itself."""
    from markupsafe import escape

    from api.summaries.charts import chart_names

    def image(name: str) -> str:
        label = f"Chart: {name.replace('-', ' ')} by day (the figures are in the tables)"
        src = escape(chart_url(name))
        return f'<img class="chart-img" alt="{label}" src="{src}" loading="lazy">'

    drawn = {name: image(name) for name in chart_names(doc)}
    empty = dict.fromkeys(("sows", "sows-gossop", "craving", "sleep", "medications"), "")
    page = _environment().get_template("summary.html").render(doc=doc, charts=empty | drawn)
    return page[page.index("<body>") + len("<body>") : page.rindex("</body>")]


# --- PDF ---------------------------------------------------------------------------------------


def _font_paths() -> tuple[str, str]:
    # DejaVu ships inside matplotlib's wheel: Unicode names render without any system font.
    import matplotlib

    base = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return str(base / "DejaVuSans.ttf"), str(base / "DejaVuSans-Bold.ttf")


class _NextLine(TypedDict):
    """multi_cell's keywords for "continue on the next line, at the left margin"."""

    new_x: XPos
    new_y: YPos


class _PdfWriter:
    """Writes the summary into an fpdf2 document, one method per section."""

    def __init__(self, doc: Mapping[str, Any], figs: Mapping[str, Any]) -> None:
        from fpdf import FPDF
        from fpdf.enums import XPos, YPos

        self.doc, self.figs = doc, figs
        self.next_line: _NextLine = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT}
        patient, period = doc["patient"], doc["period"]
        running = f"{patient['display_name']}, {period['first_day']} to {period['last_day']}"

        class SummaryPDF(FPDF):
            def footer(self) -> None:
                self.set_y(-12)
                self.set_font("DejaVu", size=7)
                self.set_text_color(110)
                self.cell(
                    0,
                    5,
                    f"{running}. Protected by 42 CFR part 2: see the notice on page 1. "
                    f"Page {self.page_no()}/{{nb}}",
                    align="C",
                )

        pdf = SummaryPDF(format="A4", unit="mm")
        pdf.set_title(f"Summary: {patient['display_name']}")
        pdf.set_creator("Waymark")
        regular, bold = _font_paths()
        pdf.add_font("DejaVu", "", regular)
        pdf.add_font("DejaVu", "B", bold)
        pdf.set_margins(14, 14, 14)
        pdf.set_auto_page_break(auto=True, margin=16)
        pdf.add_page()
        self.pdf = pdf
        self.width = pdf.w - pdf.l_margin - pdf.r_margin

    # building blocks

    def line(self, text: str, *, size: float = 9, style: str = "", height: float = 4.6) -> None:
        self.pdf.set_font("DejaVu", style, size)
        self.pdf.multi_cell(self.width, height, text, **self.next_line)

    def heading(self, text: str) -> None:
        pdf = self.pdf
        if pdf.get_y() > pdf.h - 50:
            pdf.add_page()
        pdf.ln(3)
        self.line(text, size=13, style="B", height=7)
        pdf.set_draw_color(200)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + self.width, pdf.get_y())
        pdf.ln(1.5)

    def table(self, header: list[str], rows: list[list[Any]], widths: tuple[int, ...]) -> None:
        self.pdf.set_font("DejaVu", "", 8)
        with self.pdf.table(
            col_widths=widths, text_align="LEFT", line_height=4.6, padding=0.8
        ) as table:
            for values in [header, *rows]:
                row = table.row()
                for value in values:
                    row.cell(value if isinstance(value, str) else _fmt(value))

    def chart(self, name: str) -> None:
        from api.summaries import charts

        fig = self.figs.get(name)
        if fig is None:
            return
        png = charts.to_png(fig, dpi=170)
        height = self.width * fig.get_figheight() / fig.get_figwidth()
        if self.pdf.get_y() + height > self.pdf.h - 16:
            self.pdf.add_page()
        self.pdf.image(io.BytesIO(png), w=self.width)

    def included(self, name: str) -> Mapping[str, Any] | None:
        section = self.doc["sections"][name]
        if section["status"] == "withheld":
            self.line(section["reason"])
            return None
        return section

    # the document

    def header(self) -> None:
        doc = self.doc
        patient, period, consent = doc["patient"], doc["period"], doc["consent"]
        self.line(f"Clinician summary: {patient['display_name']}", size=17, style="B", height=8)
        purpose = consent.get("purpose")
        expires = consent.get("expires_at")
        self.line(
            f"Period: {period['first_day']} to {period['last_day']} ({period['days']} days, "
            f"{patient['timezone']})\nGenerated: {doc['generated_at']}\n"
            f"Consent: {consent['id']}: {', '.join(consent['categories'])}"
            + (f"; purpose {purpose.replace('_', ' ')}" if purpose else "")
            + (f"; expires {expires}" if expires else "")
            # The rest of the consent's scope (42 CFR 2.32(b)), as the HTML shows it.
            + "".join(
                f"; {label} {consent[key]}"
                for key, label in (
                    ("data_from", "data from"),
                    ("discloser", "disclosed by"),
                    ("consent_text_version", "consent text"),
                )
                if consent.get(key)
            )
        )
        self.pdf.ln(2)
        self.pdf.set_font("DejaVu", "B", 8)
        self.pdf.multi_cell(
            self.width, 4, "Redisclosure notice (42 CFR part 2)", border="LTR", **self.next_line
        )
        self.pdf.set_font("DejaVu", "", 7.5)
        self.pdf.multi_cell(
            self.width, 3.6, doc["redisclosure_notice"], border="LBR", **self.next_line
        )

    def alerts(self) -> None:
        self.heading("Open alerts")
        items = self.doc["sections"]["alerts"]["items"]
        for a in items:
            rule = a["rule"].replace("_", " ")
            self.line(f"- {rule} ({a['category']}), {a['triggered_at']}: {a['detail']}")
        if not items:
            self.line("No open alerts in the consented categories.")
        self.line("Alerts are flags for the clinician; they are not advice to the patient.", size=8)

    def checkins(self) -> None:
        self.heading("Check-ins")
        if c := self.included("checkins"):
            self.line(
                f"{c['count']} check-ins; {c['days_with_data']} of {c['days_in_period']} days "
                f"with data (completeness {_pct(c['completeness'])})."
            )

    def _trend_rows(self, names: tuple[tuple[str, str], ...], section: Any) -> list[list[Any]]:
        rows = []
        for name, label in names:
            t = section[name]
            rows.append(
                [
                    label,
                    t["n"],
                    t["min"],
                    t["mean"],
                    t["max"],
                    t["first_week_mean"],
                    t["last_week_mean"],
                    _signed(t["change"]),
                ]
            )
        return rows

    def withdrawal(self) -> None:
        self.heading("Withdrawal")
        if w := self.included("withdrawal"):
            names = (("sows", "SOWS (0-64)"), ("sows-gossop", "SOWS-Gossop (0-30)"))
            self.table(
                ["Scale", "Readings", "Min", "Mean", "Max", "First wk", "Last wk", "Change"],
                self._trend_rows(names, w),
                (34, 16, 12, 14, 12, 16, 16, 16),
            )
            self.chart("sows")
            self.chart("sows-gossop")

    def symptoms(self) -> None:
        self.heading("Symptoms")
        if sym := self.included("symptoms"):
            if not sym["top"]:
                self.line("No symptom ratings in the period.")
                return
            self.table(
                ["Symptom (0-10)", "Mean", "Max", "Ratings"],
                [[x["name"].replace("_", " "), x["mean"], x["max"], x["n"]] for x in sym["top"]],
                (60, 20, 20, 20),
            )

    def craving_sleep(self) -> None:
        self.heading("Craving and sleep")
        if self.included("craving"):
            names = (("craving", "Craving (0-10)"), ("sleep", "Sleep (hours)"))
            self.table(
                ["", "Values", "Min", "Mean", "Max", "First wk", "Last wk", "Change"],
                self._trend_rows(names, self.doc["sections"]),
                (34, 16, 12, 14, 12, 16, 16, 16),
            )
            self.chart("craving")
            self.chart("sleep")

    def cows(self) -> None:
        self.heading("COWS assessments")
        if cows := self.included("cows"):
            if not cows["assessments"]:
                self.line("No COWS assessment in the period.")
                return
            self.table(
                ["Assessed", "Total (0-48)", "Band"],
                [
                    [c["assessed_at"], c["total"], (c["severity"] or "none").replace("_", " ")]
                    for c in cows["assessments"]
                ],
                (70, 30, 50),
            )

    def medications(self) -> None:
        self.heading("Medications")
        meds = self.included("medications")
        if not meds:
            return
        o = meds["overall"]
        self.line(
            f"On-time window: {meds['on_time_window_minutes']} minutes either side of the "
            f"scheduled time. Dose adherence {_pct(o['dose_adherence'])} ({o['taken']} of "
            f"{o['scheduled']}); {o['missed']} missed; longest run of missed doses "
            f"{o['longest_missed_run']}. PDC is per medication (never pooled)."
        )
        self.chart("medications")
        header = [
            "Medication",
            "Sched.",
            "Taken",
            "On-time",
            "Skipped",
            "Missed",
            "PRN",
            "Adherence",
            "PDC",
            "Run",
        ]
        rows = []
        for m in meds["medications"]:
            label = f"{m['name']} {_fmt(m['dose'])} {m['unit'] or ''}".strip()
            rows.append(
                [
                    label + (" (as needed)" if m["as_needed"] else ""),
                    *(m[k] for k in ("scheduled", "taken", "taken_on_time", "skipped", "missed")),
                    m["taken_unscheduled"],
                    _pct(m["dose_adherence"]),
                    _pct(m["pdc"]),
                    m["longest_missed_run"],
                ]
            )
        self.table(header, rows, (50, 13, 13, 14, 14, 14, 11, 19, 13, 9))
        for m in meds["medications"]:
            if m["missed_doses"]:
                more = len(m["missed_doses"]) - 30
                self.line(
                    f"Missed doses, {m['name']} {_fmt(m['dose'])} {m['unit'] or ''}: "
                    + ", ".join(m["missed_doses"][:30])
                    + (f" and {more} more" if more > 0 else ""),
                    size=8,
                )

    def counseling(self) -> None:
        self.heading("Counseling")
        if c := self.included("counseling"):
            counts = ", ".join(f"{k} {v}" for k, v in c["counts"].items())
            self.line(f"Attendance rate {_pct(c['attendance_rate'])}. Sessions: {counts}.")
            if c["missed_sessions"]:
                self.table(
                    ["Missed session", "Kind", "Title"],
                    [[m["starts_at"], m["kind"], m["title"]] for m in c["missed_sessions"]],
                    (60, 30, 80),
                )

    def definitions(self) -> None:
        self.heading("Definitions")
        for key, text in self.doc["definitions"].items():
            self.line(key.replace("_", " "), size=8.5, style="B", height=4.2)
            self.line(text, size=8, height=4)

    def output(self) -> bytes:
        for part in (
            self.header,
            self.alerts,
            self.checkins,
            self.withdrawal,
            self.symptoms,
            self.craving_sleep,
            self.cows,
            self.medications,
            self.counseling,
            self.definitions,
        ):
            part()
        return bytes(self.pdf.output())


def warm_up() -> None:
    """Pay the first summary's one-time costs now: matplotlib (charts.warm_up), then fpdf2 and
    the font subsetter, by writing a one-line PDF with the summary's fonts and a chart. gunicorn's
    preloading master calls this before it forks (gunicorn.conf.py), so no worker's first
    summary pays for the imports (issue 17: about 2 s on this machine)."""
    from fpdf import FPDF

    from api.summaries import charts

    charts.warm_up()
    pdf = FPDF(format="A4", unit="mm")
    regular, bold = _font_paths()
    pdf.add_font("DejaVu", "", regular)
    pdf.add_font("DejaVu", "B", bold)
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 8)
    pdf.cell(text="warm-up")
    with pdf.table() as table:
        table.row().cell("warm-up")
    pdf.output()


def render_pdf(doc: Mapping[str, Any], *, sows_threshold: float | None = None) -> bytes:
    """A PDF from Python wheels alone (fpdf2, matplotlib's PNG charts and DejaVu font)."""
    from api.summaries import charts

    return _PdfWriter(doc, charts.figures(doc, sows_threshold=sows_threshold)).output()
