"""Every node of the DAG, in TFX's topological order (the unit test pins it; e2e runs expect it).

A plain module, not conftest.py: tests/ and tests/e2e/ each have a conftest.py, and pytest
loads both under the one module name `conftest`, so `from conftest import ...` would reach
whichever was loaded last.
"""

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
    "WebExport",
    "AtomicPusher",
)
