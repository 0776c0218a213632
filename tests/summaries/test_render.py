"""HTML and PDF renderings of a summary: what they must carry, and charts a browser really draws."""

from __future__ import annotations

import copy
import io
import re
import shutil
import subprocess
from html import escape as html_escape
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

from api.config import REDISCLOSURE_NOTICE
from api.readmodel.rows import Period
from api.summaries.compute import CATEGORIES, SummarySettings, build_summary
from api.summaries.render import render_html, render_pdf
from tests.support.demo import generate_demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NAME = "Zoë Ågren"
NOTICE_START = "This record which has been disclosed to you is protected by Federal confidentiality"


def summary(categories: tuple[str, ...] = CATEGORIES) -> dict:
    demo = generate_demo()
    return build_summary(
        demo.data(),
        patient={"id": "0f0f0f0f-0000-4000-8000-000000000001", "display_name": NAME},
        period=Period(demo.start, demo.end, demo.timezone),
        consent={
            "id": "c0ffee00-0000-4000-8000-000000000002",
            "categories": list(categories),
            "data_from": "2026-09-01T00:00:00+00:00",
            "discloser": "Harbor Recovery Program",
            "consent_text_version": "2026-01",
        },
        generated_at=demo.now,
        now=demo.now,
        notice=REDISCLOSURE_NOTICE,
        settings=SummarySettings(),
    )


@pytest.fixture(scope="module")
def full() -> dict:
    return summary()


@pytest.fixture(scope="module")
def html(full: dict) -> str:
    return render_html(full, sows_threshold=21)


def test_html_carries_who_when_consent_and_notice(full: dict, html: str) -> None:
    assert NAME in html
    assert "2026-10-05 to 2026-11-15" in html
    assert full["generated_at"] in html
    assert full["consent"]["id"] in html
    # The consent's scope (42 CFR 2.32(b)): the data period, the discloser, the text signed.
    for part in ("data from 2026-09-01", "disclosed by Harbor Recovery Program", "text 2026-01"):
        assert part in html, part
    assert NOTICE_START in html
    assert "@media print" in html


def test_html_has_one_inline_svg_per_chart_with_unique_ids(html: str) -> None:
    assert len(re.findall(r"<svg\b", html)) == 5  # SOWS, Gossop, craving, sleep, medications
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert ids and len(ids) == len(set(ids))
    for ref in set(re.findall(r'(?:href="#|url\(#)([^")]+)', html)):
        assert ref in ids  # every reference resolves inside the page


def test_the_same_summary_renders_the_same_page(full: dict, html: str) -> None:
    # Byte-identical renders: no render timestamp in the SVG metadata (a delivered summary and
    # its re-render must compare equal, and caches can key on the content).
    assert "<dc:date>" not in html
    assert render_html(full, sows_threshold=21) == html


def test_html_escapes_patient_text() -> None:
    doc = summary()
    doc["patient"]["display_name"] = "<script>alert(1)</script>"
    assert "<script>alert" not in render_html(doc)


def test_withheld_sections_say_so_and_draw_nothing() -> None:
    page = render_html(summary(("counseling",)))
    assert "<svg" not in page
    assert page.count("does not cover") == 6  # craving and sleep share one heading
    assert "Buprenorphine" not in page and "Recovery group" in page


def test_pdf_carries_who_when_consent_notice_and_charts(full: dict) -> None:
    data = render_pdf(full, sows_threshold=21)
    assert data.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(data))
    text = " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)
    assert NAME in text
    assert "2026-10-05 to 2026-11-15" in text
    assert full["generated_at"] in text
    assert full["consent"]["id"] in text
    for part in ("data from 2026-09-01", "disclosed by Harbor Recovery Program", "text 2026-01"):
        assert part in text, part
    assert NOTICE_START in text
    images = sum(len(page.images) for page in reader.pages)
    assert images == 5


def _chart_pixels(png: Path) -> int:
    """Pixels in the charts' line colours (blue, orange, green) in a screenshot."""
    image = Image.open(png).convert("RGB")
    targets = [(0x25, 0x63, 0xEB), (0xD9, 0x77, 0x06), (0x05, 0x96, 0x69)]
    colours = image.getcolors(maxcolors=image.width * image.height) or []
    return sum(
        n
        for n, (r, g, b) in colours
        if any(abs(r - tr) + abs(g - tg) + abs(b - tb) < 40 for tr, tg, tb in targets)
    )


def _screenshot(page: str, tmp_path: Path, name: str) -> Path:
    assert CHROMIUM
    source = tmp_path / f"{name}.html"
    source.write_text(page, encoding="utf-8")
    shot = tmp_path / f"{name}.png"
    subprocess.run(  # noqa: S603 (a fixed argument list, no shell)
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / ('profile-' + name)}",
            "--window-size=1000,2600",
            f"--screenshot={shot}",
            source.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.exists()
    return shot


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed here (apt-get install -y chromium); .ci/run installs it",
)
def test_html_renders_its_charts_in_headless_chromium(html: str, tmp_path: Path) -> None:
    with_charts = _screenshot(html, tmp_path, "with")
    # The same page with the charts taken out: the chart colours must come from the charts.
    without = _screenshot(re.sub(r"<svg\b.*?</svg>", "", html, flags=re.S), tmp_path, "without")
    drawn, baseline = _chart_pixels(with_charts), _chart_pixels(without)
    assert drawn > 5000, drawn
    assert baseline < drawn / 20, (baseline, drawn)


def test_user_text_is_drawn_as_text_not_mathtext(full: dict) -> None:
    # "$\\foo$" is an unknown mathtext command (was a 500); "$x^2$" would be drawn as math.
    name = "Bup $\\foo$ $x^2$"
    # A medication name (user input) reaches the chart labels, the HTML table and the PDF.
    doc = copy.deepcopy(full)
    doc["patient"]["display_name"] = name
    for med in doc["sections"]["medications"]["medications"]:
        med["name"] = name
    page = render_html(doc, sows_threshold=21)
    assert html_escape(name) in page
    text = "".join(
        p.extract_text() for p in PdfReader(io.BytesIO(render_pdf(doc, sows_threshold=21))).pages
    )
    assert name.replace(" ", "") in text.replace(" ", "").replace("\n", "")
