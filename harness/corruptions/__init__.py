"""Natural corruptions of the test images: whether they fit the data, their evaluation and their examples.

The corruption plugins (harness.registry.contracts.CorruptionPlugin) change images; this package decides what
they may know of the data (`fit.py`), judges the corrupted test images with the float32 model batch by batch,
resumably (`evaluate.py`), and keeps a few corrupted images for the report (`examples.py`). The runner's stage is
harness.run.corruption_stage.
"""
