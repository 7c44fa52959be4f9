"""The curated raw-data schema, shipped as package data so an installed image finds it too."""

from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("schema.pbtxt")


def load_schema(path: Path = SCHEMA_PATH):
    """The schema proto parsed from its text file."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    return text_format.Parse(Path(path).read_text(), schema_pb2.Schema())
