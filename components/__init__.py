"""Model-side code of the taxi pipeline: features, Transform, Keras model, run_fn, custom components."""
