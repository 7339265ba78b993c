"""Layout checks of a rendered report, shared by the fast report tests and the slow CT-report test.

Each check reads the PDF through poppler (`pdftotext -bbox`, `pdftotext -layout`, `pdftoppm`) or the HTML twin,
and returns what it found wrong (empty: nothing), so a failing test names the page and the text.
"""

from __future__ import annotations

import base64
import html as html_lib
import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from harness.report.plots import AXES_KEY

MM = 72 / 25.4  # PDF points per millimetre
MARGIN_MM = 20.0  # left and right page margins of report.css
FOOTER_MM = 21.0  # bottom margin (the footer lives in it)
HEADER_MM = 20.0  # top margin (the running title lives in it)
PNG_DPI = 50
MAX_PAGES = 16  # the default CT plan's report: legible type, 30 mm thumbnails, two-page Appendix A (issue 25)
MIN_FILL = 0.6  # pages but the body's last and the appendix's last are filled at least this far down
# a unit in the label's parentheses; a severity axis counts levels, a categorical axis says it has categories
UNIT = re.compile(r"\([^()]*(%|HU|count|\[0,1\] pixel units|level|categories)[^()]*\)")


def tool(name: str) -> str:
    """A poppler-utils program (install.sh installs them)."""
    path = shutil.which(name)
    assert path, f"{name} (poppler-utils) is needed to check the PDF; install.sh installs it"
    return path


@dataclass
class Word:
    """One word of the PDF with its box in points."""

    page: int  # 1-based
    text: str
    x_min: float
    x_max: float
    y_min: float
    y_max: float


@dataclass
class Layout:
    """A rendered report: its words with boxes, page sizes, page texts and page images."""

    pdf: Path
    words: list[Word]
    page_sizes: list[tuple[float, float]]  # points
    page_texts: list[str]  # pdftotext -layout, one per page
    page_images: list[np.ndarray]  # grey levels 0-255, one per page at PNG_DPI

    @property
    def n_pages(self) -> int:
        """The page count."""
        return len(self.page_sizes)


def read_layout(pdf: Path, png_dir: Path) -> Layout:
    """Run poppler over the PDF: word boxes (-bbox), page texts (-layout) and pages as PNG (pdftoppm)."""
    bbox = subprocess.run([tool("pdftotext"), "-bbox", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    words, sizes = [], []
    for number, page in enumerate(re.findall(r"<page (.*?)</page>", bbox, flags=re.S), start=1):
        size = re.match(r'width="([\d.]+)" height="([\d.]+)"', page)
        assert size, page[:80]
        sizes.append((float(size.group(1)), float(size.group(2))))
        for x0, y0, x1, y1, text in re.findall(
                r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>', page):
            words.append(Word(number, html_lib.unescape(text), float(x0), float(x1), float(y0), float(y1)))
    texts = subprocess.run([tool("pdftotext"), "-layout", str(pdf), "-"], check=True, capture_output=True,
                           text=True).stdout.split("\f")[:len(sizes)]
    png_dir.mkdir(parents=True, exist_ok=True)
    for stale in png_dir.glob("page-*.png"):
        stale.unlink()
    subprocess.run([tool("pdftoppm"), "-r", str(PNG_DPI), "-png", str(pdf), str(png_dir / "page")], check=True)
    images = [np.asarray(Image.open(path).convert("L")) for path in sorted(png_dir.glob("page-*.png"))]
    assert len(images) == len(sizes), (len(images), len(sizes))
    return Layout(pdf, words, sizes, texts, images)


# DejaVu Sans (report.css) sets a word's pdftotext box about 1.164 × the font size tall (measured: 7.5 pt → 8.7 pt)
BOX_PER_POINT = 1.164
SMALL_PT = 7.0  # type under about this size is hard to read on paper (issue 25)
MAX_SMALL_SHARE = 0.05  # at most this share of the words may be smaller


def type_size(word: Word) -> float:
    """A word's type size in points, from the height of its box."""
    return (word.y_max - word.y_min) / BOX_PER_POINT


def small_words(layout: Layout, under_pt: float = SMALL_PT) -> list[Word]:
    """The words set smaller than `under_pt` (with a 0.05 pt tolerance for rounding in poppler's boxes)."""
    return [w for w in layout.words if type_size(w) < under_pt - 0.05]


def small_type_share(layout: Layout, under_pt: float = SMALL_PT) -> float:
    """The share of the report's words set smaller than `under_pt`."""
    return len(small_words(layout, under_pt)) / max(1, len(layout.words))


def words_past_margins(layout: Layout, tolerance_pt: float = 1.0) -> list[str]:
    """Words whose box leaves the text block (left or right page margin)."""
    out = []
    for w in layout.words:
        width, _ = layout.page_sizes[w.page - 1]
        if w.x_max > width - MARGIN_MM * MM + tolerance_pt or w.x_min < MARGIN_MM * MM - tolerance_pt:
            out.append(f"page {w.page}: {w.text!r} spans x {w.x_min:.1f}-{w.x_max:.1f} pt (page width {width:.1f})")
    return out


def ink_in_margins(layout: Layout, inset_mm: float = 1.0) -> list[str]:
    """Pages with anything drawn (text, rules, table backgrounds, images) in the left or right margin."""
    out = []
    for number, image in enumerate(layout.page_images, start=1):
        px_per_mm = image.shape[1] / (layout.page_sizes[number - 1][0] / MM)
        edge = int((MARGIN_MM - inset_mm) * px_per_mm)
        for side, strip in (("left", image[:, :edge]), ("right", image[:, -edge:])):
            if (strip < 200).any():
                out.append(f"page {number}: ink in the {side} margin")
    return out


def page_fill(layout: Layout) -> list[float]:
    """How far down each page's text block the content reaches (0 to 1), from the page images."""
    fills = []
    for number, image in enumerate(layout.page_images, start=1):
        px_per_mm = image.shape[0] / (layout.page_sizes[number - 1][1] / MM)
        top, bottom = int(HEADER_MM * px_per_mm), image.shape[0] - int(FOOTER_MM * px_per_mm)
        inked = np.flatnonzero((image[top:bottom] < 200).any(axis=1))
        fills.append(0.0 if inked.size == 0 else (inked[-1] + 1) / (bottom - top))
    return fills


def short_pages(layout: Layout, min_fill: float) -> dict[int, float]:
    """Pages (1-based) filled less than `min_fill`, besides the body's last page (before Appendix A) and the last."""
    appendix = max(i for i, text in enumerate(layout.page_texts) if "Appendix A. " in text)
    exempt = {appendix - 1, layout.n_pages - 1}
    return {i + 1: round(float(f), 2) for i, f in enumerate(page_fill(layout)) if i not in exempt and f < min_fill}


def headings(html: str) -> dict[str, int]:
    """The report's headings and captions by text, with their level (h2 2, h3 3, h4 4, table captions 5)."""
    found = re.findall(r"<(h[234]|caption)[^>]*>(.*?)</\1>", html, flags=re.S)
    found += [("caption", text) for text in re.findall(r'<p class="caption-above">(.*?)</p>', html, flags=re.S)]
    return {" ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", text)).split()): int(tag[1]) if tag[0] == "h" else 5
            for tag, text in found}


def _body_lines(text: str) -> list[str]:
    """A page's lines without the running title (first) and the footer (last), whitespace normalised."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return lines[1:-1]


def orphaned_headings(layout: Layout, html: str, lead_in_lines: int = 2) -> list[str]:
    """Headings left at a page bottom: the page's last heading is followed by at most a short lead-in, and the
    next page goes on under it (with body text or a lower-level heading), not with a heading of its own rank."""
    levels = headings(html)
    out = []
    pages = [_body_lines(text) for text in layout.page_texts]
    for number, (lines, following) in enumerate(zip(pages[:-1], pages[1:], strict=True), start=1):
        last = max((i for i, line in enumerate(lines) if line in levels), default=None)
        if last is None or len(lines) - 1 - last > lead_in_lines:
            continue
        after = [line for line in lines[last + 1:] if line in levels]
        nxt = following[0] if following else ""
        if not after and (nxt not in levels or levels[nxt] > levels[lines[last]]):
            out.append(f"page {number} ends with the heading {lines[last]!r} (page {number + 1} starts {nxt!r})")
    return out


def png_axis_labels(png: bytes) -> list[str]:
    """The axis labels harness.report.plots wrote into a figure's PNG."""
    with Image.open(io.BytesIO(png)) as image:
        return [line for line in image.text.get(AXES_KEY, "").splitlines() if line]


def figure_axis_labels(html: str) -> list[list[str]]:
    """The axis labels of every figure (<figure class="plot ...">) in the HTML, read from the embedded PNGs."""
    labels = []
    for figure in re.findall(r'<figure class="plot[^"]*">(.*?)</figure>', html, flags=re.S):
        match = re.search(r'src="data:image/png;base64,([^"]+)"', figure)
        assert match, figure[:200]
        labels.append(png_axis_labels(base64.b64decode(match.group(1))))
    return labels


def labels_without_units(labels: list[str]) -> list[str]:
    """What is wrong with one figure's axis labels: fewer than an x and a y label, or a label naming no unit."""
    out = [f"axis labels {labels}"] if len(labels) < 2 else []
    return out + [f"{label!r} names no unit" for label in labels if not UNIT.search(label)]


def figures_without_units(html: str) -> list[str]:
    """Figures missing an x or y axis label, or with a label that names no unit."""
    return [f"figure {number}: {problem}" for number, labels in enumerate(figure_axis_labels(html), start=1)
            for problem in labels_without_units(labels)]
