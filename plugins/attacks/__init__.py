"""Built-in attacks plugins."""
