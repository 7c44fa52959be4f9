"""AnomalyGate: stops the run when ExampleValidator found anomalies (TFX only records them)."""
