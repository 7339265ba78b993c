"""Built-in defences plugins."""
