"""A preview image of a rendered report: chosen pages side by side (docs/report-preview.png).

    .venv/bin/python -m harness.report.preview RUN_DIR docs/report-preview.png --pages 1 3

Pages are rasterised by pdftoppm (poppler-utils, installed by install.sh) from RUN_DIR/report.pdf.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.errors import HarnessError
from harness.storage.atomic import write_bytes_atomic

BACKGROUND = (200, 204, 212)
GAP = 16  # pixels between and around the pages


def preview(pdf: Path, out: Path, pages: list[int], dpi: int = 75) -> Path:
    """Write `pages` (1-based) of `pdf` side by side as one PNG at `out`."""
    import io

    from PIL import Image

    tool = shutil.which("pdftoppm")
    if tool is None:
        raise HarnessError("pdftoppm (poppler-utils) is needed to rasterise the report; install.sh installs it")
    images = []
    with tempfile.TemporaryDirectory() as tmp:
        for page in pages:
            stem = Path(tmp) / f"page{page}"
            subprocess.run([tool, "-r", str(dpi), "-png", "-singlefile", "-f", str(page), "-l", str(page), str(pdf),
                            str(stem)], check=True, capture_output=True)
            images.append(Image.open(stem.with_suffix(".png")).convert("RGB"))
    width = sum(image.width for image in images) + GAP * (len(images) + 1)
    height = max(image.height for image in images) + 2 * GAP
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    x = GAP
    for image in images:
        canvas.paste(image, (x, GAP))
        x += image.width + GAP
    buffer = io.BytesIO()
    canvas.quantize(colors=256).save(buffer, format="PNG", optimize=True)
    write_bytes_atomic(out, buffer.getvalue())
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: RUN_DIR OUT [--pages N ...] [--dpi D]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--pages", type=int, nargs="+", default=[1, 2], help="1-based page numbers (default 1 2)")
    parser.add_argument("--dpi", type=int, default=75)
    args = parser.parse_args(argv)
    pdf = args.run_dir / "report.pdf"
    if not pdf.is_file():
        parser.error(f"{pdf} does not exist (render it with `harness report {args.run_dir}`)")
    print(preview(pdf, args.out, args.pages, args.dpi))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
