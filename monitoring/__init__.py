"""After the push: what the served versions saw and answered, checked against what they came from.

Prediction-log reading (`prediction_logs`), training-serving skew (`skew`), prediction drift
(`drift`), realized quality once labels arrive (`quality`), each version's ML Metadata lineage
(`lineage`), alerts (`alerts`), the KServe inference-logger receiver (`kserve_logger`) and
`python -m pipeline monitor`'s composition of the checks (`monitor`, its report: `report`).

Layer: below `pipeline` (the CLI and ops call in), above `components` and `serving`; the
model server (`serving/server.py`) never imports from here: `pipeline/cli/serving.py` hands
it the live-skew tracker (`skew.RollingSkew`) and the prediction logger's observer.
"""
