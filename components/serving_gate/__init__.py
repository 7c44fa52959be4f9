"""ServingGate: replays the eval split through the exported signatures and refuses a wrong model."""
