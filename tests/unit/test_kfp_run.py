"""`kfp-run`: a compiled KFP spec run here as KFP's driver and launcher would run it.

The specs are small and hand-written; their container tasks are `python -c TASK` scripts that
read the ExecutorInput from `{{$}}`, record what they got (and their process id) in
$KFP_TEST_DIR/<task>.json, write their output artifacts and an ExecutorOutput.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.ops import kfp_conditions, kfp_spec
from pipeline.ops.kfp_run import KfpSpecError, load_spec, plan_run, refusals, run_spec

REPO = Path(__file__).resolve().parents[2]

TASK = r"""
import json, os, sys
ei = json.loads(sys.argv[1])
flags = dict(a[2:].split("=", 1) for a in sys.argv[2:] if a.startswith("--"))
seen = {"pid": os.getpid(), "input": ei, "flags": flags, "cwd": os.getcwd(), "python": sys.executable}
with open(os.path.join(os.environ["KFP_TEST_DIR"], flags["task"] + ".json"), "w") as f:
    json.dump(seen, f)
print("working on", flags["task"])
if flags.get("fail"):
    for i in range(60):
        print("line", i)
    sys.exit(3)
output = {"artifacts": {}, "parameterValues": {}}
for key, listed in ei["outputs"].get("artifacts", {}).items():
    uri = listed["artifacts"][0]["uri"]
    with open(uri, "w") as f:
        f.write(flags["task"])
    reported = {"metadata": json.loads(flags.get("meta-" + key, "{}"))}
    if flags.get("move") == key:
        reported["uri"] = uri + "-moved"
    output["artifacts"][key] = {"artifacts": [reported]}
for item in filter(None, flags.get("param-file", "").split(",")):
    key, value = item.split(":")
    with open(ei["outputs"]["parameters"][key]["outputFile"], "w") as f:
        f.write(value)
for item in filter(None, flags.get("param-value", "").split(",")):
    key, value = item.split(":")
    output["parameterValues"][key] = json.loads(value)
with open(ei["outputs"]["outputFile"], "w") as f:
    json.dump(output, f)
"""

# Trainer first: the run must order the tasks by their dependencies, not by the file.
SPEC = """
pipelineInfo: {name: demo}
defaultPipelineRoot: gs://demo-bucket/root
root:
  inputDefinitions:
    parameters:
      epochs: {parameterType: NUMBER_INTEGER, defaultValue: 3, isOptional: true}
      flavour: {parameterType: STRING, defaultValue: vanilla, isOptional: true}
      data_uri: {parameterType: STRING, defaultValue: gs://demo-bucket/data, isOptional: true}
  dag:
    tasks:
      Trainer:
        taskInfo: {name: Trainer}
        componentRef: {name: comp-trainer}
        dependentTasks: [Gen]
        inputs:
          artifacts:
            examples: {taskOutputArtifact: {producerTask: Gen, outputArtifactKey: examples}}
          parameters:
            epochs: {componentInputParameter: epochs}
            rows: {taskOutputParameter: {producerTask: Gen, outputParameterKey: rows}}
      Gen:
        taskInfo: {name: Gen}
        componentRef: {name: comp-gen}
        inputs:
          artifacts:
            raw: {taskOutputArtifact: {producerTask: Importer, outputArtifactKey: artifact}}
          parameters:
            flavour: {componentInputParameter: flavour}
            label: {runtimeValue: {constant: taxi}}
      Importer:
        taskInfo: {name: Importer}
        componentRef: {name: comp-importer}
        inputs:
          parameters:
            uri: {componentInputParameter: data_uri}
components:
  comp-importer:
    executorLabel: exec-importer
    inputDefinitions: {parameters: {uri: {parameterType: STRING}}}
    outputDefinitions: {artifacts: {artifact: {artifactType: {schemaTitle: system.Dataset}}}}
  comp-gen:
    executorLabel: exec-gen
    inputDefinitions:
      parameters:
        flavour: {parameterType: STRING}
        label: {parameterType: STRING}
        limit: {parameterType: NUMBER_INTEGER, defaultValue: 10, isOptional: true}
      artifacts: {raw: {artifactType: {schemaTitle: system.Dataset}}}
    outputDefinitions:
      artifacts:
        examples:
          artifactType: {instanceSchema: "title: tfx.Examples\\ntype: object\\n"}
          metadata: {origin: spec, span: 0}
      parameters: {rows: {parameterType: NUMBER_INTEGER}}
  comp-trainer:
    executorLabel: exec-trainer
    inputDefinitions:
      parameters: {epochs: {parameterType: NUMBER_INTEGER}, rows: {parameterType: NUMBER_INTEGER}}
      artifacts: {examples: {artifactType: {instanceSchema: "title: tfx.Examples\\ntype: object\\n"}}}
    outputDefinitions:
      artifacts: {model: {artifactType: {schemaTitle: system.Model}}}
      parameters: {accuracy: {parameterType: NUMBER_DOUBLE}}
deploymentSpec:
  executors:
    exec-importer:
      importer:
        artifactUri: {runtimeParameter: uri}
        typeSchema: {schemaTitle: system.Dataset}
        metadata: {source: importer}
    exec-gen:
      container:
        image: demo:1
        command: [python, -c, TASK]
        args:
          - "{{$}}"
          - --task=Gen
          - --flavour={{$.inputs.parameters['flavour']}}
          - --examples={{$.outputs.artifacts['examples'].path}}
          - --raw={{$.inputs.artifacts['raw'].uri}}
          - '--meta-examples={"span": 7}'
          - --param-file=rows:42
          - --both={{$.inputs.parameters['label']}}:{{$.outputs.parameters['rows'].output_file}}
          - '{"IfPresent": {"InputName": "flavour", "Then": ["--has-flavour=yes"]}}'
          - '{"IfPresent": {"InputName": "size", "Then": "--size=1", "Else": "--no-size=yes"}}'
    exec-trainer:
      container:
        image: demo:1
        command: [python, -c, TASK]
        args:
          - "{{$}}"
          - --task=Trainer
          - --epochs={{$.inputs.parameters['epochs']}}
          - --examples={{$.inputs.artifacts['examples'].uri}}
          - --move=model
          - --param-value=accuracy:0.9
""".replace("TASK", json.dumps(TASK))


def _spec() -> dict:
    return yaml.safe_load(SPEC)


@pytest.fixture
def seen_dir(tmp_path):
    folder = tmp_path / "seen"
    folder.mkdir()
    return folder


def _run(spec, tmp_path, seen_dir, **options):
    lines: list[str] = []
    options.setdefault("rewrites", [("gs://demo-bucket/", f"{tmp_path}/bucket/")])
    result = run_spec(
        spec,
        run_root=tmp_path / "run",
        env={"KFP_TEST_DIR": str(seen_dir)},
        log=lines.append,
        **options,
    )
    return result, lines


def _seen(seen_dir, task) -> dict:
    return json.loads((seen_dir / f"{task}.json").read_text())


def test_tasks_run_in_dependency_order_each_in_its_own_process(tmp_path, seen_dir):
    result, lines = _run(_spec(), tmp_path, seen_dir)

    assert result.ok, lines
    assert [t.name for t in result.tasks] == ["Importer", "Gen", "Trainer"]
    assert [t.state for t in result.tasks] == ["succeeded"] * 3
    gen, trainer = _seen(seen_dir, "Gen"), _seen(seen_dir, "Trainer")
    assert gen["pid"] == result.task("Gen").pid and trainer["pid"] == result.task("Trainer").pid
    assert len({gen["pid"], trainer["pid"], os.getpid()}) == 3
    assert result.task("Importer").pid is None  # an importer runs no process
    assert Path(gen["python"]).parent == Path(sys.executable).parent  # `python` is this interpreter
    assert gen["cwd"] == os.getcwd()
    assert lines[1].startswith("task Gen succeeded in ") and lines[1].endswith(" s")


def test_the_executor_input_is_kfps_json_with_typed_inputs_and_substituted_placeholders(tmp_path, seen_dir):
    result, _ = _run(_spec(), tmp_path, seen_dir, params={"epochs": "5"})

    gen, trainer = _seen(seen_dir, "Gen"), _seen(seen_dir, "Trainer")
    json_format.ParseDict(gen["input"], pipeline_spec_pb2.ExecutorInput())  # the proto's JSON form
    # The component's default joins what the task was given (KFP's launcher: addDefaultParams).
    assert gen["input"]["inputs"]["parameterValues"] == {"flavour": "vanilla", "label": "taxi", "limit": 10}
    assert gen["flags"]["flavour"] == "vanilla"
    rows_file = gen["input"]["outputs"]["parameters"]["rows"]["outputFile"]
    assert gen["flags"]["both"] == f"taxi:{rows_file}"  # resolved by the launcher, not the driver
    assert gen["flags"]["has-flavour"] == "yes" and gen["flags"]["no-size"] == "yes"
    assert "size" not in gen["flags"]
    examples = result.task("Gen").artifacts["examples"][0]
    assert gen["flags"]["examples"] == examples["uri"]  # a local folder is its own path
    assert trainer["input"]["inputs"]["parameterValues"] == {"epochs": 5, "rows": 42}
    assert trainer["flags"]["epochs"] == "5"
    assert trainer["flags"]["examples"] == examples["uri"]


def test_artifacts_and_parameters_travel_downstream_with_the_executor_outputs_metadata(tmp_path, seen_dir):
    result, _ = _run(_spec(), tmp_path, seen_dir)

    gen_examples = result.task("Gen").artifacts["examples"][0]
    # The driver's artifact (metadata from the output definition) with the ExecutorOutput's merged on.
    assert gen_examples["metadata"] == {"origin": "spec", "span": 7}
    assert result.task("Gen").parameters == {"rows": 42}  # from the output file, typed
    received = _seen(seen_dir, "Trainer")["input"]["inputs"]["artifacts"]["examples"]["artifacts"][0]
    assert received["uri"] == gen_examples["uri"]
    assert received["metadata"] == {"origin": "spec", "span": 7}
    assert received["type"] == {"instanceSchema": "title: tfx.Examples\ntype: object\n"}
    assert Path(received["uri"]).read_text() == "Gen"
    # A URI the executor reports replaces the driver's; parameterValues are taken as reported.
    trainer = result.task("Trainer")
    provisioned = _seen(seen_dir, "Trainer")["input"]["outputs"]["artifacts"]["model"]["artifacts"][0]["uri"]
    assert trainer.artifacts["model"][0]["uri"] == provisioned + "-moved"
    assert trainer.parameters == {"accuracy": 0.9}


def test_output_uris_have_kfps_form_under_the_rewritten_pipeline_root(tmp_path, seen_dir):
    result, _ = _run(_spec(), tmp_path, seen_dir, run_id="run-7")

    uri = result.task("Gen").artifacts["examples"][0]["uri"]
    root = f"{tmp_path}/bucket/root/demo/run-7"
    assert result.pipeline_root == root
    assert re.fullmatch(re.escape(root) + r"/Gen/[0-9a-f-]{36}/examples", uri), uri
    outputs = _seen(seen_dir, "Gen")["input"]["outputs"]
    assert outputs["outputFile"] == str(tmp_path / "run" / "tasks" / "Gen" / "output_metadata.json")
    assert outputs["parameters"]["rows"]["outputFile"] == str(
        tmp_path / "run" / "tasks" / "Gen" / "outputs" / "rows"
    )
    assert "gs://" not in json.dumps(_seen(seen_dir, "Gen")) + json.dumps(_seen(seen_dir, "Trainer"))
    assert kfp_spec.generate_output_uri("gs://b/r/?q=1", ["demo", "r1"], True) == "gs://b/r/demo/r1?q=1"


def test_pipeline_root_option_replaces_the_specs(tmp_path, seen_dir):
    result, _ = _run(_spec(), tmp_path, seen_dir, pipeline_root=str(tmp_path / "elsewhere"), run_id="r")

    assert result.task("Gen").artifacts["examples"][0]["uri"].startswith(f"{tmp_path}/elsewhere/demo/r/Gen/")


def test_importer_resolves_its_uri_type_and_metadata_without_a_process(tmp_path, seen_dir):
    result, _ = _run(_spec(), tmp_path, seen_dir, params={"data_uri": "gs://demo-bucket/other"})

    imported = result.task("Importer").artifacts["artifact"][0]
    assert imported == {
        "name": "artifact",
        "type": {"schemaTitle": "system.Dataset"},
        "uri": f"{tmp_path}/bucket/other",  # the parameter rewritten too
        "metadata": {"source": "importer"},
    }
    assert _seen(seen_dir, "Gen")["flags"]["raw"] == f"{tmp_path}/bucket/other"

    spec = _spec()
    spec["deploymentSpec"]["executors"]["exec-importer"]["importer"]["artifactUri"] = {
        "constant": "gs://demo-bucket/fixed"
    }
    result, _ = _run(spec, tmp_path, seen_dir)
    assert result.task("Importer").artifacts["artifact"][0]["uri"] == f"{tmp_path}/bucket/fixed"


def test_parameters_are_typed_and_bad_ones_named_before_anything_runs(tmp_path, seen_dir):
    for params, message in [
        ({"epochs": "five"}, "runtime parameter epochs: 'five' is not a valid NUMBER_INTEGER"),
        ({"epoch": "5"}, "unknown runtime parameter(s) ['epoch']"),
    ]:
        with pytest.raises(KfpSpecError, match=re.escape(message)):
            _run(_spec(), tmp_path, seen_dir, params=params)
    spec = _spec()
    del spec["root"]["inputDefinitions"]["parameters"]["epochs"]["defaultValue"]
    spec["root"]["inputDefinitions"]["parameters"]["epochs"]["isOptional"] = False
    with pytest.raises(KfpSpecError, match=re.escape("runtime parameter(s) ['epochs'] have no default")):
        _run(spec, tmp_path, seen_dir)
    assert not (tmp_path / "run").exists() and not list(seen_dir.iterdir())

    assert kfp_spec.root_parameters(spec, {"epochs": "4"})["epochs"] == 4
    assert kfp_spec.text_to_value("True", "BOOLEAN") is True
    assert kfp_spec.text_to_value("[1, 2]", "LIST") == [1, 2]
    with pytest.raises(KfpSpecError):
        kfp_spec.text_to_value("{}", "LIST")


def _with_conditional_tasks(condition: str) -> dict:
    """The spec plus Pusher (after the Trainer, under `condition`) and Notify (after the Pusher)."""
    spec = _spec()
    components, executors = spec["components"], spec["deploymentSpec"]["executors"]
    examples = components["comp-trainer"]["inputDefinitions"]["artifacts"]["examples"]
    for name, after in [("Pusher", "Trainer"), ("Notify", "Pusher")]:
        components[f"comp-{name}"] = {
            "executorLabel": f"exec-{name}",
            "inputDefinitions": {
                "parameters": {"flavour": {"parameterType": "STRING"}},
                "artifacts": {"examples": examples},
            },
        }
        executors[f"exec-{name}"] = {
            "container": {
                "image": "demo:1",
                "command": ["python", "-c", TASK],
                "args": ["{{$}}", f"--task={name}"],
            }
        }
        spec["root"]["dag"]["tasks"][name] = {
            "taskInfo": {"name": name},
            "componentRef": {"name": f"comp-{name}"},
            "dependentTasks": [after],
            "inputs": {
                "parameters": {"flavour": {"componentInputParameter": "flavour"}},
                "artifacts": {
                    "examples": {
                        "taskOutputArtifact": {"producerTask": "Gen", "outputArtifactKey": "examples"}
                    }
                },
            },
        }
    spec["root"]["dag"]["tasks"]["Pusher"]["triggerPolicy"] = {"condition": condition}
    return spec


CONDITION = (
    "inputs.parameter_values['flavour'] == 'vanilla' && "
    "(inputs.artifacts['examples'].artifacts[0].metadata['span'] > 5.0)"
)


def test_a_true_condition_runs_the_task(tmp_path, seen_dir):
    result, lines = _run(_with_conditional_tasks(CONDITION), tmp_path, seen_dir)

    assert result.ok, lines
    assert [(t.name, t.state) for t in result.tasks][-2:] == [
        ("Pusher", "succeeded"),
        ("Notify", "succeeded"),
    ]


def test_a_false_condition_skips_the_task_and_its_dependents(tmp_path, seen_dir):
    result, lines = _run(
        _with_conditional_tasks(CONDITION), tmp_path, seen_dir, params={"flavour": "chocolate"}
    )

    assert result.ok
    assert [(t.name, t.state) for t in result.tasks][-2:] == [("Pusher", "skipped"), ("Notify", "skipped")]
    assert (
        result.task("Pusher").artifacts == {} and result.task("Notify").message == "upstream Pusher skipped"
    )
    assert not (seen_dir / "Pusher.json").exists() and not (seen_dir / "Notify.json").exists()
    assert "task Pusher skipped (condition false)" in lines


def test_the_cel_subset_kfp_and_tfx_compilers_emit():
    inputs = {
        "parameterValues": {"n": 7.0, "s": "heads", "b": True},
        "artifacts": {"m": {"artifacts": [{"uri": "gs://x/m", "metadata": {"blessed": 1.0}}]}},
    }
    for text, expected in [
        ("int(inputs.parameter_values['n']) > 5", True),
        ("!(inputs.parameter_values['s'] == 'tails')", True),
        ("inputs.parameter_values['s'] == 'tails' || inputs.parameter_values['b'] == true", True),
        ("double(inputs.parameter_values['n']) <= -1.5", False),
        ("inputs.parameters['n'].string_value == '7'", True),
        ("(inputs.artifacts['m'].artifacts[0].metadata['blessed'] == 1.0)", True),
        ("inputs.artifacts['m'].artifacts[0].uri != \"gs://x/m\"", False),
    ]:
        assert kfp_conditions.condition(text, inputs) is expected, text
    for text, why in [
        ("size(inputs.parameter_values) > 0", "outside the CEL subset"),
        ("inputs.parameter_values['missing'] == 'x'", "no such key: missing"),
        ("inputs.parameter_values['s'] > 5", "no such overload"),
        ("inputs.parameter_values['n']", "not bool"),
    ]:
        with pytest.raises(KfpSpecError, match=why):
            kfp_conditions.condition(text, inputs)


def test_a_condition_outside_the_subset_is_refused_before_running(tmp_path, seen_dir):
    spec = _with_conditional_tasks("inputs.parameter_values['flavour'].startsWith('v')")

    with pytest.raises(KfpSpecError, match='task "Pusher": condition .* outside the CEL subset'):
        _run(spec, tmp_path, seen_dir)
    assert not list(seen_dir.iterdir())


def test_a_failing_task_stops_the_run_and_shows_its_log_tail(tmp_path, seen_dir):
    spec = _spec()
    spec["deploymentSpec"]["executors"]["exec-gen"]["container"]["args"].append("--fail=yes")

    result, lines = _run(spec, tmp_path, seen_dir)

    assert not result.ok and result.failed_task == "Gen"
    assert [(t.name, t.state) for t in result.tasks] == [("Importer", "succeeded"), ("Gen", "failed")]
    assert not (seen_dir / "Trainer.json").exists()
    log = tmp_path / "run" / "logs" / "Gen.log"
    shown = "\n".join(lines)
    assert "task Gen failed in" in shown and "exit status 3" in shown and str(log) in shown
    assert "| line 59" in shown and "| line 19" not in shown  # the last 40 lines only
    summary = json.loads((tmp_path / "run" / "kfp-run.json").read_text())
    assert summary["state"] == "failed" and summary["failed_task"] == "Gen"


def test_the_summary_records_every_task(tmp_path, seen_dir):
    result, _ = _run(_spec(), tmp_path, seen_dir, run_id="r1")

    summary = json.loads((tmp_path / "run" / "kfp-run.json").read_text())
    assert summary["pipeline"] == "demo" and summary["run_id"] == "r1" and summary["state"] == "succeeded"
    assert [(t["name"], t["state"]) for t in summary["tasks"]] == [
        (t.name, "succeeded") for t in result.tasks
    ]
    gen = summary["tasks"][1]
    assert gen["artifacts"]["examples"] == [
        {"uri": result.task("Gen").artifacts["examples"][0]["uri"], "metadata": {"origin": "spec", "span": 7}}
    ]
    assert gen["parameters"] == {"rows": 42} and gen["seconds"] > 0
    assert gen["log"] == str(tmp_path / "run" / "logs" / "Gen.log")
    assert "working on Gen" in Path(gen["log"]).read_text()


def test_refuses_a_resolver_executor_with_kfps_message(tmp_path, seen_dir):
    spec = _spec()
    spec["deploymentSpec"]["executors"]["exec-gen"] = {"resolver": {"outputArtifactQueries": {}}}

    message = (
        'error processing component name="comp-gen": executor(label="exec-gen"): '
        "non-container and non-importer executor not implemented"
    )
    assert refusals(spec) == [message]
    with pytest.raises(KfpSpecError, match=re.escape(message)):
        _run(spec, tmp_path, seen_dir)
    assert not list(seen_dir.iterdir())


def test_refuses_a_lifecycle_hook_that_kfp_would_silently_skip():
    spec = _spec()
    spec["deploymentSpec"]["executors"]["exec-gen"]["container"]["lifecycle"] = {
        "preCacheCheck": {"command": ["python"], "args": ["driver"]}
    }

    (found,) = refusals(spec)
    assert found.startswith('error processing component name="comp-gen": executor(label="exec-gen"): ')
    assert "preCacheCheck is ignored by open-source KFP" in found and "silently not run" in found


def test_task_order_follows_dependencies_and_input_producers_then_the_spec():
    spec = {
        "root": {
            "dag": {
                "tasks": {
                    "B": {"dependentTasks": ["A"]},
                    "D": {"inputs": {"parameters": {"x": {"taskOutputParameter": {"producerTask": "C"}}}}},
                    "A": {},
                    "C": {},
                }
            }
        }
    }

    assert kfp_spec.task_order(spec) == ["A", "B", "C", "D"]
    spec["root"]["dag"]["tasks"]["A"]["dependentTasks"] = ["B"]
    with pytest.raises(KfpSpecError, match=re.escape("dependency cycle among ['A', 'B']")):
        kfp_spec.task_order(spec)


def test_loads_yaml_with_a_platform_document_and_json(tmp_path):
    (tmp_path / "p.yaml").write_text(SPEC + "---\nplatforms: {kubernetes: {}}\n")
    (tmp_path / "p.json").write_text(json.dumps({"pipelineSpec": _spec(), "runtimeConfig": {}}))

    assert load_spec(tmp_path / "p.yaml") == _spec() == load_spec(tmp_path / "p.json")
    assert plan_run(load_spec(tmp_path / "p.yaml")).order == ["Importer", "Gen", "Trainer"]
    (tmp_path / "bad.yaml").write_text("a: 1\n")
    with pytest.raises(KfpSpecError, match="not a KFP pipeline spec"):
        load_spec(tmp_path / "bad.yaml")


def _cli(tmp_path, seen_dir, spec: dict, *options):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "kfp-run",
            str(path),
            "--run-root",
            str(tmp_path / "run"),
            *options,
        ],
        cwd=REPO,
        env={**os.environ, "KFP_TEST_DIR": str(seen_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_end_to_end(tmp_path, seen_dir):
    rewrite = f"gs://demo-bucket/={tmp_path}/bucket/"

    checked = _cli(tmp_path, seen_dir, _spec(), "--check", "--rewrite", rewrite)
    assert checked.returncode == 0, checked.stderr
    assert "3 tasks in order: Importer, Gen, Trainer" in checked.stdout and not list(seen_dir.iterdir())

    ran = _cli(tmp_path, seen_dir, _spec(), "--rewrite", rewrite, "--param", "epochs=4", "--run-id", "cli")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = ran.stdout.splitlines()
    assert [line.split(" succeeded")[0] for line in out[:3]] == ["task Importer", "task Gen", "task Trainer"]
    assert out[-1].startswith("kfp-run cli: 3 succeeded, 0 skipped in ")
    assert _seen(seen_dir, "Trainer")["flags"]["epochs"] == "4"

    failing = _spec()
    failing["deploymentSpec"]["executors"]["exec-trainer"]["container"]["args"].append("--fail=yes")
    failed = _cli(tmp_path, seen_dir, failing, "--rewrite", rewrite)
    assert failed.returncode == 1
    assert "task Trainer failed" in failed.stdout and "| line 59" in failed.stdout
    assert failed.stderr.splitlines()[-1].startswith("error: task Trainer failed after ")

    resolver = _spec()
    resolver["deploymentSpec"]["executors"]["exec-gen"] = {"resolver": {}}
    refused = _cli(tmp_path, seen_dir, resolver, "--rewrite", rewrite)
    assert refused.returncode == 2
    assert "non-container and non-importer executor not implemented" in refused.stderr

    bad = _cli(tmp_path, seen_dir, _spec(), "--param", "epochs=many")
    assert bad.returncode == 2 and "error: runtime parameter epochs" in bad.stderr
