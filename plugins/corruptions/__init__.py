"""Built-in corruption plugins: CT, MRI and general natural corruptions with five severities each."""
