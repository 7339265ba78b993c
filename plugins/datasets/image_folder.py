"""Placeholder while this plugin is being written (replaced before landing)."""
