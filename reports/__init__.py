"""Report templates and styles (Jinja2 + CSS) rendered to HTML and PDF by harness.report."""
