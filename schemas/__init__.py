"""The curated raw-data schema, shipped as package data so an installed image finds it too."""

from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("schema.pbtxt")
