"""Run a TFLite model in the standalone edge runtime (ai-edge-litert), in a process without TensorFlow.

Usage (from the edge venv): `python tests/edge_runner.py MODEL.tflite INPUTS.npz OUT.npz`.
INPUTS holds one array per raw feature (strings as bytes objects); OUT gets `batch` (the
whole set in one call), `single` (one example per call) and `single_ms` (each call's time).
Refuses to run if TensorFlow is importable here: the point is that the app needs none.
"""

from __future__ import annotations

import importlib.util
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main() -> int:
    if importlib.util.find_spec("tensorflow") is not None:
        print("tensorflow is importable here: not a standalone edge runtime", file=sys.stderr)
        return 2
    model, inputs_path, out_path = sys.argv[1:4]
    data = np.load(inputs_path, allow_pickle=True)
    inputs = {name: data[name] for name in data.files}
    runner = Interpreter(model_path=model).get_signature_runner("serving_raw")
    count = len(next(iter(inputs.values())))
    batch = runner(**inputs)["probabilities"]
    single, times = [], []
    for i in range(count):
        started = time.perf_counter()
        single.append(runner(**{k: v[i : i + 1] for k, v in inputs.items()})["probabilities"][0])
        times.append(time.perf_counter() - started)
    np.savez(out_path, batch=batch, single=np.asarray(single), single_ms=np.asarray(times) * 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
