"""The embedded default dataset: the Chicago taxi sample shipped inside the `tfx` package."""
