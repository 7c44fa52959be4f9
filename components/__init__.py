"""Custom TFX components of the taxi pipeline, each a package of spec, component and executor.

`EdgeModel` and `WebModel` are re-exported here because their artifact type names
(`components.EdgeModel`, `components.WebModel`) are also the import paths TFX's Kubeflow
container entrypoint loads them by.
"""

from components.shared import EdgeModel, WebModel

__all__ = ["EdgeModel", "WebModel"]
