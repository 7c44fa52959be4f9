"""DriftGate: compares the newest span with the previous one and stops the run when it drifted."""
