"""Custom TFX components of the taxi pipeline, each a package of spec, component and executor.

`EdgeModel` is re-exported here because its artifact type name, `components.EdgeModel`, is
also the import path TFX's Kubeflow container entrypoint loads it by.
"""

from components.shared import EdgeModel

__all__ = ["EdgeModel"]
