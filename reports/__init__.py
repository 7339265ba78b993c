"""The validation report's Jinja2 templates and CSS, shipped as package data (``templates/``).

QA teams restyle the report by editing ``templates/report.css`` or a section template; no Python changes.
"""
