"""Custom TFX components of the taxi pipeline, each a package of spec, component and executor."""
