"""TFJobTrainer executor: write the workers' spec, submit the TFJob, wait, check the chief's export.

`custom_config[TFJOB_KEY]` holds the `TFJobSettings` fields plus, optionally, `api_server`
(default: the in-cluster API with the pod's service account) and `poll_s`.
"""

from __future__ import annotations

import json
import os

from absl import logging
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.io import fileio

from components.tfjob_trainer import kubernetes as tfjob
from models.train_worker import fn_args_spec

TFJOB_KEY = "tfjob"
SPEC_FILE_NAME = "worker_spec.json"


class Executor(trainer_executor.GenericExecutor):
    """Runs training as a TFJob instead of in this process."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        fn_args = self._GetFnArgs(input_dict, output_dict, exec_properties)
        options = dict((fn_args.custom_config or {}).get(TFJOB_KEY) or {})
        if not options:
            raise ValueError(f"TFJobTrainer needs custom_config['{TFJOB_KEY}'] (image, workers, ...)")
        api_server = options.pop("api_server", None)
        poll_s = float(options.pop("poll_s", 10.0))
        settings = tfjob.TFJobSettings(**options)

        fileio.makedirs(fn_args.model_run_dir)
        spec_uri = os.path.join(fn_args.model_run_dir, SPEC_FILE_NAME)
        with fileio.open(spec_uri, "w") as handle:
            handle.write(json.dumps(fn_args_spec(fn_args), indent=2))

        client = tfjob.KubernetesClient(api_server) if api_server else tfjob.KubernetesClient.in_cluster()
        name = tfjob.job_name(os.path.basename(os.path.dirname(fn_args.serving_model_dir.rstrip("/"))))
        manifest = tfjob.tfjob_manifest(name, spec_uri, settings)
        tfjob.run_tfjob(client, manifest, settings.timeout_s, poll_s, log=logging.info)

        if not fileio.exists(os.path.join(fn_args.serving_model_dir, "saved_model.pb")):
            raise tfjob.TFJobError(
                f"TFJob {settings.namespace}/{name} succeeded but its chief exported no model at "
                f"{fn_args.serving_model_dir}"
            )
        logging.info("TFJob %s done; model at %s", name, fn_args.serving_model_dir)
