"""WebExport: the TensorFlow.js model of the trained SavedModel, gated in headless Chromium."""
