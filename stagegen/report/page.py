"""The report as one self-contained HTML page: every image inlined as a data URI, no script, no
request to any server, every text escaped (names and values come from files)."""

from __future__ import annotations

import base64
import html
import json
import struct
from typing import Any

__all__ = ["Page", "png_size"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: small grids (16x16 digits) are drawn larger, with sharp pixels, up to this width
DISPLAY_WIDTH = 640
#: no image is shown wider than this (a wider one is scaled down to it)
MAX_DISPLAY_WIDTH = 1000
#: a PNG whose header declares a side longer than this is not a grid of ours (the largest grid
#: stagegen writes is 2**27 pixels): a viewer would allocate its whole canvas
MAX_IMAGE_SIDE = 16384

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right; }
th { background: #f4f4f4; } td.name, th.name { text-align: left; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figcaption { font-size: 0.8em; color: #555; }
img.grid { image-rendering: pixelated; } img { max-width: 100%; height: auto; }
div.scroll { overflow-x: auto; max-width: 100%; }
pre { background: #f7f7f7; padding: 0.75em; overflow-x: auto; font-size: 0.8em; }
p.note { color: #666; font-size: 0.9em; }
"""


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None for anything that is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_MAGIC) or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


class Page:
    """Sections of HTML, appended in order and written as one document."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str, anchor: str) -> None:
        self.parts.append(f'<h2 id="{html.escape(anchor)}">{html.escape(text)}</h2>')

    def paragraph(self, text: str, note: bool = False) -> None:
        self.parts.append(f"<p{' class=note' if note else ''}>{html.escape(text)}</p>")

    def preformatted(self, value: Any, summary: str) -> None:
        text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
        self.parts.append(f"<details><summary>{html.escape(summary)}</summary><pre>{html.escape(text)}</pre></details>")

    def table(self, head: list[str] | None, rows: list[list[str]], name_columns: int = 1) -> None:
        def cells(values, tag):
            return "".join(
                f"<{tag}{' class=name' if i < name_columns else ''}>{html.escape(str(v))}</{tag}>" for i, v in enumerate(values)
            )

        body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
        header = f"<tr>{cells(head, 'th')}</tr>" if head else ""
        # a table wider than the window scrolls inside its box; the page keeps its width
        self.parts.append(f"<div class=scroll><table>{header}{body}</table></div>")

    def image(self, data: bytes, caption: str, pixelated: bool = True) -> None:
        """A PNG inlined; small ones shown enlarged (whole multiples, sharp pixels)."""
        size = png_size(data)
        if size is None:
            self.paragraph(f"{caption}: not a PNG image, left out", note=True)
            return
        if not (0 < size[0] <= MAX_IMAGE_SIDE and 0 < size[1] <= MAX_IMAGE_SIDE):
            self.paragraph(
                f"{caption}: a PNG of {size[0]:,} x {size[1]:,} pixels is not a grid of stagegen's, left out", note=True
            )
            return
        width = size[0] * max(1, DISPLAY_WIDTH // size[0]) if pixelated else size[0]
        width = min(width, MAX_DISPLAY_WIDTH)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        css = ' class="grid"' if pixelated else ""
        self.parts.append(
            f'<figure><img{css} src="{uri}" width="{width}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def html(self) -> str:
        title = html.escape(self.title)
        return (
            "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            # nothing on the page may reach the network: images are inline, there is no script
            "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
            f"<title>{title}</title><style>{STYLE}</style></head>\n<body><h1>{title}</h1>\n"
            + "\n".join(self.parts)
            + "\n</body></html>\n"
        )
