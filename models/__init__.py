"""What TFX runs as user code: features, preprocessing_fn, the Keras model, run_fn, signatures."""
