"""Certified robustness by randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019).

`smoothing` holds the sampling and the CERTIFY/PREDICT decisions (no files), `precision` the speed options
(channels-last; bf16 on CUDA) under the agreement check `engine: auto` uses, `evaluate` the resumable stage over the
test images, and `summary` the typed results (certified accuracy over a radius grid) built from the certificates.
"""
