"""The layout's import rules: imports run one way, and no project module is in an import cycle.

The order: cli -> ops -> pipeline -> monitoring -> components -> serving -> data -> models -> schemas
-> tfma_batched (a library: it imports nothing of the project).

Read from the source with `ast` (every import, at module level or inside a function), so a
lazy import that runs the wrong way fails here as surely as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "monitoring", "components", "models", "serving", "data", "schemas", "tfma_batched")
# Layer of a module, highest first: a module may import its own layer or any lower one.
LAYERS = (
    "pipeline.__main__",
    "pipeline.cli",
    "pipeline.ops",
    "pipeline",  # config, create_pipeline(), the two runners
    "monitoring",  # after the push: prediction logs, skew, drift, realized quality, alerts
    "components",
    "serving",
    "data",
    "models",
    "schemas",
    "tfma_batched",  # a TFMA extension: imports nothing of the project
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules `path` imports (the most specific known module of each import)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def layer(module: str) -> int:
    for rank, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    raise AssertionError(f"{module} belongs to no layer")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imports_of(path, name, known) for name, path in modules.items()}


def test_every_layer_has_modules(graph):
    for prefix in LAYERS:
        assert any(layer(m) == LAYERS.index(prefix) for m in graph), f"no module in {prefix}"
    # The graph is not vacuous: the DAG definition imports components, models and serving code.
    assert {"components.serving_gate.component", "models.trainer"} <= graph["pipeline.pipeline"]
    assert "models.signatures" in graph["pipeline.eval_config"]
    # Shared component pieces live in components.shared, not in another component's executor.
    assert "components.shared" in graph["components.example_gen.executor"]
    assert "components.shared" in graph["components.edge_export.executor"]
    assert not any(
        target.startswith("components.")
        and target.endswith(".executor")
        and target.rsplit(".", 1)[0] != module.rsplit(".", 1)[0]
        for module, targets in graph.items()
        if module.startswith("components.")
        for target in targets
    ), "a component imports another component's executor"
    assert {"tfma_batched.model_wrapper", "tfma_batched.slicing"} <= graph["models.evaluator"]


def test_imports_run_one_way(graph):
    upward = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer(target) < layer(module)
    ]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_layer_rule_catches_an_upward_import(tmp_path):
    module = tmp_path / "models" / "bad.py"
    module.parent.mkdir()
    module.write_text("from pipeline.ops import run_history\n\ndef f():\n    from serving import server\n")
    known = {"pipeline.ops.run_history", "serving.server", "models.bad"}
    found = imports_of(module, "models.bad", known)
    assert found == {"pipeline.ops.run_history", "serving.server"}
    assert all(layer(target) < layer("models.bad") for target in found)


def test_pipeline_top_level_holds_only_the_dag_config_and_runners():
    top = sorted(p.name for p in (REPO / "pipeline").glob("*.py"))
    assert top == [
        "__init__.py",
        "__main__.py",
        "code_version.py",  # the local runner's code fingerprint
        "config.py",
        "eval_config.py",  # the Evaluator's TFMA config (metrics, slices, thresholds)
        "kubeflow_runner.py",
        "local_runner.py",
        "pipeline.py",
    ]
    assert "def " not in (REPO / "pipeline" / "__main__.py").read_text()  # it only dispatches


def test_each_component_is_spec_component_executor():
    for package in sorted(p for p in (REPO / "components").iterdir() if (p / "__init__.py").is_file()):
        files = {p.name for p in package.glob("*.py")}
        assert "component.py" in files, package.name
        # Packages whose components keep a TFX spec (file_batch_reads: TFX's own components).
        stock_spec = ("example_gen", "pusher", "tfjob_trainer", "file_batch_reads", "schema_import")
        assert "spec.py" in files or package.name in stock_spec, package.name
