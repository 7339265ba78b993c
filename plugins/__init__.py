"""Built-in harness plugins, registered through the "harness" entry-point group like any external plugin."""
