"""EdgeExport: the trained model's `serving_raw` graph as an int8 TFLite model, gated before any edge push."""
