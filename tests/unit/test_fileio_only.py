"""Every artifact byte through TFX's `fileio`: no local-only file call in the components.

On Kubeflow the artifact URIs and the serving dir are bucket URIs (`gs://`): `os`, `open`,
`shutil`, `pathlib`, `glob` and a numpy or pandas call given a path all take `gs://b/x` for a
local path and write a folder named `gs:` on the pod's disk, or fail. The first test reads
the source (AST) of every module under `components/` and of what they import from our other
packages; the others run the executors against TensorFlow's in-memory `ram://` file system,
which only `fileio` (through `tf.io.gfile`) reaches.
"""

from __future__ import annotations

import ast
import json
import os
import tempfile
import uuid
from pathlib import Path

import pytest
import ram_filesystem
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts

from components.anomaly_gate import spec as anomaly_spec
from components.anomaly_gate.executor import Executor as AnomalyGate
from components.drift_gate import spec as drift_spec
from components.drift_gate.executor import Executor as DriftGate
from components.example_gen.driver import SPANS_PROPERTY
from components.pusher import executor as pusher
from components.shared import DataAnomalyError, EdgeModel, read_push_records
from data import embedded
from pipeline.config import PipelineConfig
from schemas import SCHEMA_PATH

ROOT = Path(__file__).resolve().parents[2]
# Our packages whose functions the components call (followed from their imports).
OUR_PACKAGES = ("components", "data", "models", "serving", "monitoring")

# os / os.path calls that only handle strings or the process, never a file.
PURE_OS = {
    "join",
    "basename",
    "dirname",
    "splitext",
    "sep",
    "environ",
    "getpid",
    "fspath",
    "normpath",
    "cpu_count",
}
# Calls that take a path and open it locally, unless given an open handle.
PATH_IO = {
    "numpy.save",
    "numpy.savez",
    "numpy.savez_compressed",
    "numpy.savetxt",
    "numpy.load",
    "numpy.loadtxt",
    "numpy.genfromtxt",
    "numpy.fromfile",
    "numpy.memmap",
}
PANDAS_PATH_METHODS = {"to_csv", "to_parquet", "to_json", "to_pickle", "tofile"}

# (module, function) -> why a local file call is right there. Only for files that are local by
# nature (never an artifact URI or the serving dir).
ALLOWED = {
    # The service-account token Kubernetes mounts into every pod at a fixed local path: the
    # pod's own file, not an artifact (the TFJob trainer's client reads it to call the API).
    ("components/tfjob_trainer/kubernetes.py", "KubernetesClient.in_cluster"): "pod-local token",
}
# Whole modules whose files are local by nature, never artifacts: the web gate's browser run
# hands node a local folder (a converted model in a temporary directory) and the repo's
# node_modules; the executor copies the results to the artifact URI through fileio.
ALLOWED_MODULES = {"serving/web_browser.py": "node and Chromium read local folders only"}


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> what it names (`np` -> numpy, `copytree` -> shutil.copytree)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                # `import os.path` binds `os`; `import numpy as np` binds `np` to numpy.
                top = alias.name.split(".")[0]
                aliases[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _handles(tree: ast.Module, aliases: dict[str, str]) -> set[str]:
    """Names bound to an open file object: `with ... as name`, or an in-memory buffer."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
            names.add(node.optional_vars.id)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            if _dotted(node.value.func, aliases) in ("io.BytesIO", "io.StringIO"):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _local_file_call(call: ast.Call, aliases: dict[str, str], handles: set[str]) -> str | None:
    """What is wrong with `call`, or None for a call that reaches no file by a local path."""
    name = _dotted(call.func, aliases) or ""
    parts = name.split(".")
    first = call.args[0] if call.args else None
    given_a_path = first is not None and not (isinstance(first, ast.Name) and first.id in handles)
    if name in ("open", "io.open", "builtins.open"):
        return "open()"
    if parts[0] == "os":
        rest = parts[2:] if parts[1:2] == ["path"] else parts[1:]
        return None if rest and rest[0] in PURE_OS else name
    if parts[0] in ("shutil", "glob") or name in ("pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath"):
        return name
    if parts[0] == "tempfile" and any(k.arg == "dir" for k in call.keywords):
        return f"{name}(dir=...)"
    if given_a_path and (name in PATH_IO or name.startswith("pandas.read_")):
        return f"{name} with a path"
    if given_a_path and isinstance(call.func, ast.Attribute) and call.func.attr in PANDAS_PATH_METHODS:
        return f".{call.func.attr}() with a path"
    return None


class _Scan(ast.NodeVisitor):
    """Local file calls in the chosen top-level definitions (all when `only` is None)."""

    def __init__(self, tree: ast.Module, only: set[str] | None):
        self.aliases, self.only = _aliases(tree), only
        self.handles = _handles(tree, self.aliases)
        self.scope: list[str] = []
        self.found: list[tuple[str, int, str]] = []

    def _enter(self, node):
        if self.only is not None and not self.scope and node.name not in self.only:
            return
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _enter  # noqa: N815

    def visit_Call(self, node: ast.Call):
        if self.only is None or self.scope:
            problem = _local_file_call(node, self.aliases, self.handles)
            if problem:
                self.found.append((".".join(self.scope) or "<module>", node.lineno, problem))
        self.generic_visit(node)


def _module_file(dotted: str) -> Path | None:
    path = ROOT / Path(*dotted.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _definitions(tree: ast.Module) -> dict[str, ast.AST]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name: node for node in tree.body if isinstance(node, kinds)}


def _with_callees(tree: ast.Module, names: set[str]) -> set[str]:
    """`names` and the module's own functions they call by name, transitively."""
    definitions, todo, done = _definitions(tree), list(names), set()
    while todo:
        name = todo.pop()
        if name in done or name not in definitions:
            continue
        done.add(name)
        todo.extend(n.id for n in ast.walk(definitions[name]) if isinstance(n, ast.Name))
    return done


def scanned() -> dict[Path, set[str] | None]:
    """Every module under components/ whole; what they import from our packages, name by name."""
    targets: dict[Path, set[str] | None] = {path: None for path in (ROOT / "components").rglob("*.py")}
    todo = list(targets)
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.module and not node.level):
                continue
            if node.module.split(".")[0] not in OUR_PACKAGES:
                continue
            for alias in node.names:
                whole = _module_file(f"{node.module}.{alias.name}")  # `from serving import gate_checks`
                path, names = (whole, None) if whole else (_module_file(node.module), {alias.name})
                if path is None or targets.get(path, set()) is None:
                    continue
                if names is None:
                    targets[path] = None
                    todo.append(path)
                else:
                    targets[path] = targets.get(path, set()) | names
    return targets


def test_components_reach_files_through_fileio_only():
    problems, allowed_used = [], set()
    for path, names in sorted(scanned().items()):
        tree = ast.parse(path.read_text())
        scan = _Scan(tree, None if names is None else _with_callees(tree, names))
        scan.visit(tree)
        module = str(path.relative_to(ROOT))
        for function, line, problem in scan.found:
            if module in ALLOWED_MODULES:
                continue
            if (module, function) in ALLOWED:
                allowed_used.add((module, function))
            else:
                problems.append(f"{module}:{line} in {function}: {problem}")
    assert not problems, "use tfx.dsl.io.fileio (bucket URIs must work):\n" + "\n".join(problems)
    assert allowed_used == set(ALLOWED), f"stale allow-list entries: {set(ALLOWED) - allowed_used}"


def test_the_scan_sees_what_it_forbids():
    source = """
import os, shutil, tempfile
import numpy as np
import pandas as pd
from pathlib import Path
from tfx.dsl.io import fileio

def bad(uri, frame, values):
    os.makedirs(uri)
    os.path.exists(uri)
    shutil.copytree(uri, uri)
    open(uri)
    np.save(os.path.join(uri, "a.npy"), values)
    pd.read_csv(uri)
    frame.to_csv(uri)
    Path(uri).write_text("x")
    tempfile.TemporaryDirectory(dir=uri)

def good(uri, values):
    fileio.makedirs(os.path.join(uri, os.path.basename(uri)))
    with fileio.open(uri, "wb") as handle:
        np.save(handle, values)
    with tempfile.TemporaryDirectory() as local:
        pass
    return os.environ.get("X"), os.getpid()
"""
    tree = ast.parse(source)
    scan = _Scan(tree, None)
    scan.visit(tree)
    assert {function for function, _, _ in scan.found} == {"bad"}
    assert len(scan.found) == 9


# ---------------------------------------------------------------- the executors on ram://


@pytest.fixture
def ram(monkeypatch, tmp_path):
    """A fresh `ram://` root with a bucket's renames; the cwd is an empty folder that stays empty.

    TensorFlow's ram:// renames a folder's own entry only (`tests/ram_filesystem.py`);
    `bucket_renames` moves the files below it too, as a local rename and GCS's do.
    """
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    root = f"ram://unit-{uuid.uuid4().hex}"
    with ram_filesystem.bucket_renames():
        yield root
    ram_filesystem.remove_tree(root)
    assert os.listdir(cwd) == [], "something was written to the local disk"
    assert not os.path.exists(os.path.join(tempfile.gettempdir(), "ram:"))


def write(path: str, content: bytes) -> None:
    fileio.makedirs(os.path.dirname(path))
    with fileio.open(path, "wb") as handle:
        handle.write(content)


def read(path: str) -> bytes:
    with fileio.open(path, "rb") as handle:
        return handle.read()


def test_the_pusher_pushes_model_edge_model_and_record_into_a_bucket(ram):
    model = standard_artifacts.Model()
    model.uri = f"{ram}/Trainer/model/7"
    write(f"{model.uri}/Format-Serving/saved_model.pb", b"graph")
    write(f"{model.uri}/Format-Serving/variables/variables.index", b"index")
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", 1)
    edge = EdgeModel()
    edge.uri = f"{ram}/EdgeExport/edge_model/8"
    write(f"{edge.uri}/model.tflite", b"TFL3-bytes")
    write(f"{edge.uri}/metadata.json", json.dumps({"bytes": 10}).encode())
    edge.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    base = f"{ram}/serving/big_tipper"
    write(f"{base}/1000/saved_model.pb", b"an older push, by another pusher")

    pusher.Executor().Do(
        {"model": [model], "model_blessing": [blessing], "edge_model": [edge]},
        {"pushed_model": [pushed]},
        {"push_destination": json.dumps({"filesystem": {"base_directory": base}})},
    )

    version = pushed.get_string_custom_property("pushed_version")
    assert pushed.get_string_custom_property("pushed_destination") == f"{base}/{version}"
    assert sorted(fileio.listdir(base)) == sorted(["1000", version, "edge"])  # no staging left
    assert read(f"{base}/{version}/saved_model.pb") == b"graph"
    assert read(f"{base}/{version}/variables/variables.index") == b"index"
    assert read(f"{base}/edge/{version}/model.tflite") == b"TFL3-bytes"
    assert fileio.listdir(f"{base}/edge") == [version]
    [record] = read_push_records(base)  # version 1000 has none
    assert record.pop("pushed_at") > 0
    assert record == {
        "version": int(version),
        "model_uri": model.uri,
        "edge": f"{base}/edge/{version}",
        "web": None,
    }


def test_atomic_copy_tree_into_a_bucket_never_overwrites(ram):
    write(f"{ram}/model/saved_model.pb", b"graph")
    assert pusher.atomic_copy_tree(f"{ram}/model", f"{ram}/serving", 7) == f"{ram}/serving/7"
    with pytest.raises(FileExistsError):
        pusher.atomic_copy_tree(f"{ram}/model", f"{ram}/serving", 7)
    assert fileio.listdir(f"{ram}/serving") == ["7"]
    assert read(f"{ram}/serving/7/saved_model.pb") == b"graph"


def test_the_drift_gate_reads_spans_and_writes_its_report_in_a_bucket(ram):
    frame = embedded.read_raw_csv(embedded.taxi_sample_path())
    spans = embedded.split_into_spans(frame, embedded.DEFAULT_NUM_SPANS)
    for number in (7, 8):
        write(f"{ram}/data/span-{number}/data.csv", embedded.to_csv_bytes(spans[number - 1]))
    examples = standard_artifacts.Examples()
    examples.set_string_custom_property(SPANS_PROPERTY, "7,8")
    schema = standard_artifacts.Schema()
    schema.uri = f"{ram}/schema"
    write(f"{schema.uri}/schema.pbtxt", Path(SCHEMA_PATH).read_bytes())
    report = standard_artifacts.ExampleAnomalies()
    report.uri = f"{ram}/drift"
    DriftGate().Do(
        {drift_spec.EXAMPLES_KEY: [examples], drift_spec.SCHEMA_KEY: [schema]},
        {drift_spec.DRIFT_KEY: [report]},
        {
            drift_spec.DATA_ROOT_KEY: f"{ram}/data",
            drift_spec.SPAN_PATTERN_KEY: "span-{SPAN}/*.csv",
            drift_spec.ACCEPT_DRIFT_KEY: 0,
            drift_spec.MIN_SPAN_ROWS_KEY: PipelineConfig.min_span_rows,
        },
    )
    recorded = json.loads(read(f"{report.uri}/{drift_spec.DRIFT_FILE_NAME}"))
    assert (recorded["previous_span"], recorded["newest_span"]) == (7, 8)
    assert recorded["distances"] and recorded["drifted"] == []


def test_the_anomaly_gate_reads_anomalies_from_a_bucket(ram):
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["company"].reason.add(
        type=anomalies_pb2.AnomalyInfo.SCHEMA_MISSING_COLUMN, description="Column is completely missing"
    )
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = f"{ram}/anomalies"
    artifact.split_names = artifact_utils.encode_split_names(["eval"])
    write(f"{artifact.uri}/Split-eval/{anomaly_spec.ANOMALIES_FILE_NAME}", anomalies.SerializeToString())
    with pytest.raises(DataAnomalyError, match="feature 'company': SCHEMA_MISSING_COLUMN"):
        AnomalyGate().Do({anomaly_spec.ANOMALIES_KEY: [artifact]}, {}, {})
