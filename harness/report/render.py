"""Render the validation report: Jinja2 templates (package harness.report) → report.html → report.pdf (WeasyPrint)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from markupsafe import Markup

from harness.errors import HarnessError
from harness.report.context import build_context
from harness.report.load import load_report
from harness.storage.atomic import write_bytes_atomic, write_text_atomic
from harness.storage.checksums import update_sums

TEMPLATE = "report.html"
STYLESHEET = "report.css"
PAGE_SIZES = {"a4": "A4", "letter": "letter"}


def _templates():
    return importlib.resources.files("harness_reports") / "templates"


def _load_template(name: str) -> str | None:
    resource = _templates().joinpath(*name.split("/"))
    try:
        return resource.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return None


def environment():
    """The Jinja2 environment: templates from the harness.report package, autoescaping always on."""
    from jinja2 import Environment, FunctionLoader, StrictUndefined, select_autoescape

    from harness.report.text import breakable_id

    env = Environment(
        loader=FunctionLoader(_load_template),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml", "j2"), default_for_string=True,
                                     default=True),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["breakable"] = breakable_id  # ids wrap at their separators, never inside a number
    return env


def render_html(context: dict[str, Any], page_size: str = "A4") -> str:
    """The report as one self-contained HTML document (styles inline, figures as data: URIs)."""
    css = _load_template(STYLESHEET)
    if css is None:
        raise HarnessError(f"the report stylesheet {STYLESHEET} is missing from the harness.report package")
    css = css.replace("/*PAGE_SIZE*/A4", PAGE_SIZES.get(page_size.lower(), "A4"))
    template = environment().get_template(TEMPLATE)
    return template.render(**context, stylesheet=Markup(css))


def _data_only_fetcher() -> Any:
    """A WeasyPrint URL fetcher that resolves only embedded data: URIs: the report never loads anything else."""
    import weasyprint

    if hasattr(weasyprint, "URLFetcher"):  # WeasyPrint ≥ 68: a fetcher object with an allow-list
        return weasyprint.URLFetcher(allowed_protocols={"data"})

    def fetch(url: str, *args: Any, **kwargs: Any) -> Any:  # older WeasyPrint: a plain function
        if not url.startswith("data:"):
            raise ValueError(f"the report embeds everything; refusing to fetch {url!r}")
        return weasyprint.default_url_fetcher(url, *args, **kwargs)

    return fetch


def html_to_pdf(html: str) -> bytes:
    """PDF bytes from the report HTML."""
    from weasyprint import HTML

    return HTML(string=html, url_fetcher=_data_only_fetcher()).write_pdf()


def render_report(run_dir: Path, page_size: str = "A4") -> tuple[Path, Path]:
    """Write run_dir/report.html and run_dir/report.pdf from the run's files (nothing is re-run).

    `page_size` is 'A4' (default; its margins also leave the content whole when printed on Letter) or 'letter'.
    Raises HarnessError with a one-line message when results.json or manifest.json is missing or unreadable.
    """
    run_dir = Path(run_dir)
    if page_size.lower() not in PAGE_SIZES:
        raise HarnessError(f"page size {page_size!r} is not supported (use A4 or letter)")
    html = render_html(build_context(load_report(run_dir)), page_size)
    pdf = html_to_pdf(html)
    html_path, pdf_path = run_dir / "report.html", run_dir / "report.pdf"
    write_text_atomic(html_path, html)
    write_bytes_atomic(pdf_path, pdf)
    update_sums(run_dir, [html_path.name, pdf_path.name])  # a sealed run: only the report's lines change
    return html_path, pdf_path
