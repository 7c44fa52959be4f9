"""Installable package for the taxi big-tipper TFX pipeline.

Installed (editable) into the project's venv so that Transform and Trainer can import the
user code by dotted path (`models.transform.preprocessing_fn`), locally and in a
Kubeflow image alike. The pinned dependency set lives in `requirements.lock`.
"""

from setuptools import find_packages, setup

setup(
    name="taxi-big-tipper-pipeline",
    version="0.1.0",
    description="TFX pipeline on the Chicago taxi sample that refuses to push a silently broken model",
    python_requires=">=3.9,<3.11",
    packages=find_packages(
        include=[
            "pipeline",
            "pipeline.*",
            "monitoring",
            "monitoring.*",
            "components",
            "components.*",
            "models",
            "models.*",
            "serving",
            "serving.*",
            "data",
            "data.*",
            "schemas",
            "schemas.*",
            "tfma_batched",
            "tfma_batched.*",
        ]
    ),
    # The web page, the web gate's page and driver, and the trip encoder (served or run by node).
    package_data={"schemas": ["*.pbtxt"], "serving": ["web/*.js", "web/*.mjs", "web/*.html"]},
    install_requires=["tfx==1.16.0", "tensorflow==2.16.2", "tf-keras==2.16.0"],
    entry_points={"console_scripts": ["taxi-pipeline=pipeline.cli:main"]},
)
