"""The production worker entry point (`models.train_worker`) with two test hooks.

`python instrumented_train_worker.py SPEC.json`: the JSON is a worker spec (FnArgs fields) plus, optionally,
`logical_cpus` (split the CPU into N logical devices, which must happen before TensorFlow
starts) and `kill_after_epoch` (exit with SIGKILL's status right after that epoch's backup is
written, as a pre-empted worker would). Prints `EPOCH <n>` as each epoch begins and `DONE`.
"""

from __future__ import annotations

import json
import logging
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

spec = json.loads(open(sys.argv[1]).read())
if spec.get("logical_cpus"):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * spec["logical_cpus"]
    )

from models import train_worker, trainer  # noqa: E402


class EpochLog(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        print(f"EPOCH {epoch + 1}", flush=True)


class Kill(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == spec.get("kill_after_epoch"):
            print(f"KILLED after epoch {epoch + 1}", flush=True)
            os._exit(137)


standard = trainer.training_callbacks
# After BackupAndRestore (callbacks run in list order): the epoch's backup is written first.
trainer.training_callbacks = lambda fn_args: [EpochLog(), *standard(fn_args), Kill()]
logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
logging.getLogger("models").setLevel(logging.INFO)
train_worker.run(spec)
print("DONE", flush=True)
