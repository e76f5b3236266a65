"""The report folder: images, metrics.json and an index.html showing them; jobs add their own sections."""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaekit.files import atomic_write_text


@dataclass
class Section:
    title: str
    text: str = ""
    images: list[tuple[str, str]] = field(default_factory=list)  # (file relative to the report, caption)
    table: dict[str, Any] = field(default_factory=dict)


class Report:
    """``add(Section)`` then ``write()``: index.html + metrics.json under ``directory``."""

    def __init__(self, directory: str | Path, title: str = "vaekit report") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.sections: list[Section] = []
        self.metrics: dict[str, Any] = {}

    def add(self, section: Section) -> None:
        self.sections.append(section)

    def write(self) -> Path:
        atomic_write_text(self.dir / "metrics.json", json.dumps(self.metrics, indent=2, sort_keys=True))
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}img{image-rendering:pixelated;"
                 "max-width:100%;border:1px solid #ccc}figure{display:inline-block;margin:.5em}"
                 "td,th{padding:.2em .8em;text-align:right}</style></head><body>",
                 f"<h1>{html.escape(self.title)}</h1>"]
        for s in self.sections:
            parts.append(f"<h2>{html.escape(s.title)}</h2>")
            if s.text:
                parts.append(f"<p>{html.escape(s.text)}</p>")
            if s.table:
                rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                               for k, v in s.table.items())
                parts.append(f"<table>{rows}</table>")
            for src, cap in s.images:
                parts.append(f"<figure><img src='{html.escape(src)}' alt='{html.escape(cap)}'>"
                             f"<figcaption>{html.escape(cap)}</figcaption></figure>")
        parts.append("<p><a href='metrics.json'>metrics.json</a></p></body></html>")
        atomic_write_text(self.dir / "index.html", "\n".join(parts))
        return self.dir / "index.html"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
