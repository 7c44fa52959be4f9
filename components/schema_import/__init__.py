"""ImportProjectSchemaGen: TFX's ImportSchemaGen, where a relative schema path means the project's.

Kubeflow compiles the curated schema as `schemas/schema.pbtxt`, a path inside the project
(the image's /opt/pipeline, a checkout's root). TFX's executor would resolve it against the
working directory of whatever runs the task; this one resolves it against the installed
project, so a task started from any directory reads the project's schema.
"""
