"""The gates' default tolerances: the one place each is written.

`pipeline.config.PipelineConfig` takes its defaults from here, as do the gate check functions
(`serving.gate_checks`, `serving.edge_gate_checks`) and `verify`; components and executors take
the values they are given. No imports: the CLI reads these before TensorFlow loads.
"""

# Largest gap between the served predictions' accuracy/AUC and the Evaluator's.
DEFAULT_METRIC_TOLERANCE = 0.005
# Both signatures run the same float32 graph on the same values: any real skew is far larger.
DEFAULT_PARITY_TOLERANCE = 1e-5
# The same example scored in two batchings by the same float32 graph differs by a few float32
# ulps of a probability at most; a batch-dependence bug moves predictions by orders of magnitude
# more (`benchmarks/bench_gate.py` prints the largest difference it sees on our model).
DEFAULT_BATCH_TOLERANCE = 1e-5
# int8 may cost at most this much accuracy and AUC against the SavedModel.
DEFAULT_EDGE_ACCURACY_TOLERANCE = 0.01
DEFAULT_EDGE_AUC_TOLERANCE = 0.005
