"""Test-wide set-up: legacy Keras for TFX 1.16, set before anything imports TensorFlow."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Every node of the DAG, in TFX's topological order (the unit test pins it; e2e runs expect it).
PIPELINE_NODE_IDS = (
    "ImportSchemaGen",
    "SpanWindowCsvExampleGen",
    "StatisticsGen",
    "ExampleValidator",
    "AnomalyGate",
    "DriftGate",
    "Transform",
    "Trainer",
    "latest_blessed_model_resolver",
    "Evaluator",
    "ServingGate",
    "EdgeExport",
    "AtomicPusher",
)
