"""Driver: resolve the span window, the per-span file patterns and the input fingerprint."""

from __future__ import annotations

import re

from tfx.components.example_gen import driver as tfx_driver
from tfx.components.example_gen import utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.shared import DataAnomalyError

SPAN_SPEC = "{SPAN}"
# Joins the per-span glob patterns inside one split pattern (never part of a real path).
PATTERN_SEPARATOR = "|"
SPANS_PROPERTY = "spans"


class SpanWindowError(ValueError):
    """The requested span window matches no data, or the input config cannot express one."""


def available_spans(input_base: str, pattern: str) -> list[int]:
    """Span numbers whose files match `pattern` (which holds `{SPAN}` once), ascending."""
    if pattern.count(SPAN_SPEC) != 1:
        raise SpanWindowError(f"split pattern {pattern!r} must contain {SPAN_SPEC} exactly once")
    prefix, suffix = pattern.split(SPAN_SPEC)
    regex = re.compile(re.escape(prefix) + r"(\d+)" + _glob_to_regex(suffix) + "$")
    spans = set()
    for path in fileio.glob(f"{input_base.rstrip('/')}/{prefix}*{suffix}"):
        relative = path[len(input_base.rstrip("/")) + 1 :]
        match = regex.match(relative)
        if match:
            spans.add(int(match.group(1)))
    return sorted(spans)


def span_folders_without_data(input_base: str, pattern: str) -> list[str]:
    """Span folders (the `{SPAN}` part of the pattern's folder) holding no file the pattern matches.

    A weekly feed that made `span-9/` but wrote no CSV into it would otherwise be skipped
    without a word, and the run would train on last week's window as if nothing had arrived.
    """
    prefix, suffix = pattern.split(SPAN_SPEC)
    if "/" not in suffix:
        return []  # The span number is in the file name: no folder to be empty.
    folder_suffix = suffix.split("/", 1)[0]
    base = input_base.rstrip("/")
    folder_regex = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(folder_suffix) + "$")
    with_data = set(available_spans(input_base, pattern))
    empty = []
    for path in fileio.glob(f"{base}/{prefix}*{folder_suffix}"):
        match = folder_regex.match(path[len(base) + 1 :])
        if match and fileio.isdir(path) and int(match.group(1)) not in with_data:
            empty.append(path)
    return sorted(empty)


def _glob_to_regex(glob: str) -> str:
    return "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in glob)


def select_window(spans: list[int], range_config: range_config_pb2.RangeConfig | None) -> list[int]:
    """Spans of the window: all, a static [start, end] range, or the newest `num_spans`."""
    if range_config is None or range_config.WhichOneof("range") is None:
        window = spans
    elif range_config.HasField("static_range"):
        start = range_config.static_range.start_span_number
        end = range_config.static_range.end_span_number
        if start > end:
            raise SpanWindowError(f"span range start {start} is after its end {end}")
        window = [s for s in spans if start <= s <= end]
    else:
        rolling = range_config.rolling_range
        if rolling.num_spans < 1:
            raise SpanWindowError(f"rolling_range.num_spans must be >= 1, got {rolling.num_spans}")
        window = [s for s in spans if s >= rolling.start_span_number][-rolling.num_spans :]
    if not window:
        requested = proto_utils.proto_to_json(range_config) if range_config else "all"
        raise SpanWindowError(
            f"no data for the requested spans ({requested}); available spans: {spans or 'none'}"
        )
    return window


def resolve_window(exec_properties: dict) -> dict:
    """ExampleGen exec properties with the window resolved.

    Every split's `{SPAN}` pattern becomes the window's spans; adds `span` (the newest),
    `spans` (all) and the input fingerprint.

    Shared by the local driver below and, where no driver runs (Kubeflow), the executor.
    """
    exec_properties = dict(exec_properties)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
    range_config = None
    if exec_properties.get(standard_component_specs.RANGE_CONFIG_KEY):
        range_config = range_config_pb2.RangeConfig()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.RANGE_CONFIG_KEY], range_config)

    window = None
    fingerprints = []
    for split in input_config.splits:
        empty = span_folders_without_data(input_base, split.pattern)
        if empty:
            raise DataAnomalyError(
                f"span folder {empty[0]} holds no file matching {split.pattern.split('/')[-1]!r}"
                + (f" (nor do {len(empty) - 1} more)" if len(empty) > 1 else "")
                + ": a span arrived without its data; the run stops before reading any span"
            )
        split_window = select_window(available_spans(input_base, split.pattern), range_config)
        if window is not None and split_window != window:
            raise SpanWindowError(f"splits cover different spans: {window} vs {split_window}")
        window = split_window
        patterns = [split.pattern.replace(SPAN_SPEC, str(s)) for s in window]
        fingerprints += [
            io_utils.generate_fingerprint(split.name, f"{input_base.rstrip('/')}/{p}") for p in patterns
        ]
        split.pattern = PATTERN_SEPARATOR.join(patterns)

    exec_properties[standard_component_specs.INPUT_CONFIG_KEY] = proto_utils.proto_to_json(input_config)
    exec_properties[utils.SPAN_PROPERTY_NAME] = window[-1]
    exec_properties[utils.VERSION_PROPERTY_NAME] = None
    exec_properties[utils.FINGERPRINT_PROPERTY_NAME] = "\n".join(fingerprints)
    exec_properties[SPANS_PROPERTY] = ",".join(str(s) for s in window)
    return exec_properties


class SpanWindowDriver(tfx_driver.FileBasedDriver):
    """Replaces `{SPAN}` by every span of the window instead of a single one."""

    def resolve_exec_properties(self, exec_properties, pipeline_info, component_info):
        return resolve_window(exec_properties)

    def run(self, execution_info):
        result = super().run(execution_info)
        spans = result.exec_properties[SPANS_PROPERTY].string_value
        for artifact in result.output_artifacts[standard_component_specs.EXAMPLES_KEY].artifacts:
            artifact.custom_properties[SPANS_PROPERTY].string_value = spans
        return result
