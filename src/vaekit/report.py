"""The report folder: images, metrics.json and an index.html showing them; jobs add their own sections.

The page opens with one summary card per job (:class:`Card`: picture, headline number in words, the command that
reproduces it), then one section per job with its pictures, a table of its numbers in plain words and a short
"what this means" line. ``report.json`` marks the folder as a vaekit report, so that writing a new report over an
old one needs no ``--overwrite`` while any other non-empty folder does (:func:`check_report_folder`).
"""
from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaekit.errors import VaekitError
from vaekit.files import OS_FILES, atomic_write_text, is_temp_name

MARKER = "report.json"
FORMAT = "vaekit-report"


@dataclass
class Section:
    title: str
    text: str = ""
    images: list[tuple[str, str]] = field(default_factory=list)  # (file relative to the report, caption)
    table: dict[str, Any] = field(default_factory=dict)  # plain-word name (with its unit) → value
    meaning: str = ""  # one line: what the numbers say


@dataclass
class Card:
    """One job at a glance: ``headline`` is its number in words, ``command`` the CLI that reproduces it."""
    job: str
    image: str
    headline: str
    command: str
    caption: str = ""


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        if path.is_file() and path.stat().st_size <= 1 << 20:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return doc if isinstance(doc, dict) else None
    except (OSError, ValueError, RecursionError):
        pass
    return None


def is_report_folder(d: Path) -> bool:
    """A folder a vaekit report was written into: ``report.json`` says so, or (reports from before the marker)
    index.html beside a metrics.json holding the demo's model metrics."""
    if (_json_object(d / MARKER) or {}).get("format") == FORMAT:
        return True
    metrics = _json_object(d / "metrics.json")
    return (d / "index.html").is_file() and metrics is not None and isinstance(metrics.get("model"), dict)


def check_report_folder(path: str | os.PathLike[str], overwrite: bool = False) -> None:
    """Refuse (one-line VaekitError) to write a report into an existing non-empty folder that is not a previous
    report, unless ``overwrite``; a missing or empty folder, or an earlier report, is fine. Nothing is changed here,
    and nothing is deleted later either: a report only writes its own files."""
    d = Path(path)
    if not d.exists():
        return
    if not d.is_dir():
        raise VaekitError(f"{d}: is a file; --out names the folder to write the report into")
    try:
        names = sorted(e.name for e in os.scandir(d))
    except OSError as e:
        raise VaekitError(f"{d}: cannot list the folder ({e.strerror or e})") from None
    foreign = [n for n in names if n not in OS_FILES and not is_temp_name(n)]
    if overwrite or not foreign or is_report_folder(d):
        return
    more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
    raise VaekitError(f"{d}: is not empty and holds no earlier report ({', '.join(foreign[:3])}{more}); pass "
                      "--overwrite to write the report into it, or choose another --out")


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1280px;margin:1.2em auto;padding:0 1em;color:#222}
h1{margin:.2em 0 .1em;font-size:1.6em}.lead{margin:0 0 .8em;color:#555}
.cards{display:grid;grid-template-columns:repeat(5,minmax(0,1fr));gap:.8em;margin-bottom:1.5em}
.card{border:1px solid #ccd;border-radius:8px;padding:.6em .7em;background:#fafbff;display:flex;flex-direction:column}
.card h2{font-size:1.05em;margin:0 0 .4em;text-transform:capitalize}
.card img{width:100%;height:150px;object-fit:contain;background:#fff}
.card .headline{font-weight:600;font-size:.95em;margin:.5em 0 .4em;flex-grow:1}
.card code{display:block;font-size:.75em;background:#eef;padding:.35em;border-radius:4px;
  word-break:break-all;white-space:pre-wrap}
img{image-rendering:pixelated;image-rendering:crisp-edges;max-width:100%;border:1px solid #ccc}
figure{display:inline-block;margin:.5em;vertical-align:top}figcaption{font-size:.9em;color:#444;max-width:600px}
.meaning{background:#f3f7ee;border-left:4px solid #8a5;padding:.4em .7em}
table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #eee}
th{text-align:left;font-weight:normal}
td{text-align:right;font-variant-numeric:tabular-nums}
@media (max-width:900px){.cards{grid-template-columns:repeat(2,minmax(0,1fr))}}
"""


class Report:
    """``add(Section)`` / ``add_card(Card)`` then ``write()``: index.html, metrics.json and report.json under
    ``directory``."""

    def __init__(self, directory: str | Path, title: str = "vaekit report", lead: str = "") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.lead = lead
        self.cards: list[Card] = []
        self.sections: list[Section] = []
        self.metrics: dict[str, Any] = {}

    def add(self, section: Section) -> None:
        self.sections.append(section)

    def add_card(self, card: Card) -> None:
        self.cards.append(card)

    def write(self) -> Path:
        atomic_write_text(self.dir / "metrics.json", json.dumps(self.metrics, indent=2, sort_keys=True))
        e = html.escape
        parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(self.title)}</title>",
                 "<meta name='viewport' content='width=device-width, initial-scale=1'>",
                 f"<style>{STYLE}</style></head><body>", f"<h1>{e(self.title)}</h1>"]
        if self.lead:
            parts.append(f"<p class='lead'>{e(self.lead)}</p>")
        if self.cards:
            parts.append("<div class='cards' id='summary'>")
            for c in self.cards:
                parts.append(f"<section class='card' id='card-{e(c.job)}'><h2>{e(c.job)}</h2>"
                             f"<img src='{e(c.image)}' alt='{e(c.caption or c.job)}'>"
                             f"<p class='headline'>{e(c.headline)}</p><code>{e(c.command)}</code></section>")
            parts.append("</div>")
        for s in self.sections:
            parts.append(f"<h2>{e(s.title)}</h2>")
            if s.text:
                parts.append(f"<p>{e(s.text)}</p>")
            if s.meaning:
                parts.append(f"<p class='meaning'><b>What this means:</b> {e(s.meaning)}</p>")
            if s.table:
                rows = "".join(f"<tr><th>{e(str(k))}</th><td>{e(_fmt(v))}</td></tr>" for k, v in s.table.items())
                parts.append(f"<table>{rows}</table>")
            for src, cap in s.images:
                parts.append(f"<figure><img src='{e(src)}' alt='{e(cap)}'><figcaption>{e(cap)}</figcaption></figure>")
        parts.append("<p><a href='metrics.json'>metrics.json</a> (every number above, machine-readable)</p>"
                     "</body></html>")
        atomic_write_text(self.dir / "index.html", "\n".join(parts))
        atomic_write_text(self.dir / MARKER, json.dumps({"format": FORMAT, "version": 1, "title": self.title}))
        return self.dir / "index.html"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.4g}" if isinstance(v, float) else str(v)
