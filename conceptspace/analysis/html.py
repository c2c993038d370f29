"""HTML helpers shared by the run report and the sweep page: self-contained pages (images inlined)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}pre{background:#f6f6f6;padding:.6em;max-height:24em;overflow:auto;font-size:12px}
img{max-width:100%}.censored{color:#a00}.warn{background:#fee;padding:.4em}"""
MIME = {".png": "image/png", ".gif": "image/gif"}


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def img_tag(path: Path, alt: str = "") -> str:
    """An <img> carrying the file itself (data: URI), so the page needs nothing beside it."""
    path = Path(path)
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{esc(alt or path.stem)}" src="data:{MIME[path.suffix]};base64,{data}">'


def table(header: list, rows: list[list]) -> str:
    """Cells are escaped unless they are already HTML (wrapped by `raw`)."""
    def cell(v):
        return v.html if isinstance(v, Raw) else esc(v)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class Raw:
    def __init__(self, html_text: str):
        self.html = html_text


def page(title: str, body: list[str]) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>{''.join(body)}</body></html>")


def time_cell(step, censored: bool | None = None) -> Raw:
    """A learning time (a times.LearningTime, or step and censored flag). A censored one reads '> last step'
    (the true time is later than the run shows); one whose interval never clears the threshold is marked '?'."""
    uncertain = False
    if hasattr(step, "censored"):
        uncertain, censored, step = not step.certain and not step.censored, step.censored, step.step
    if censored:
        return Raw(f"<span class='censored'>&gt; {step:,} (censored)</span>")
    return Raw(esc(f"{step:,}") + (" <span class='censored' title='interval does not clear the threshold'>?</span>"
                                   if uncertain else ""))
