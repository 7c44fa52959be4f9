"""TFMA, a batch of examples at a time: the same slices, metric keys and figures as TFMA's stock path.

A TFMA extension, shaped like TFMA's own `extractors/` and `metrics/`: `slicing` (the extractor
that splits each batch by slice key), `metrics` (TFMA's metric classes with batched combiners),
`model_wrapper` (signatures callable as TFMA calls them), `limits` (the eval config options it
refuses) and `harness` (TFMA run both ways, for the benchmark and the comparison test). It
imports nothing of the project: the Evaluator's hooks (`models/evaluator.py`) call it.
Design: `docs/batched-evaluator.md`.
"""
