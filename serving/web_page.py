"""The `/web/` page of `serve`: a trip's form and the newest span's trips, scored in the browser.

The page (`serving/web/index.html`, `serving/web/app.js`) loads the TensorFlow.js model pushed
beside the version the server serves right now (the VersionWatcher's current one:
`<serving dir>/web/<version>/` holds model.json, the weight shards, encode.js and
metadata.json) and scores with it in the browser; it never asks the REST API. Routes, all GET:

- `/web/`: the page; `/web/app.js`: its script.
- `/web/info.json`: the served version, its web model (URLs and metadata, or why there is
  none), the npm files the page needs that are missing, and the form's fields from the schema
  (string domains as choices, int and float domains as bounds; every field may be left blank,
  a missing value).
- `/web/trips.json?limit=N`: the first N trips (default DEFAULT_TRIPS, at most MAX_TRIPS) of
  the newest span, as raw columns (null: missing) with each trip's label, and where they came from.
- `/web/model/<version>/<file>`: the files of a pushed web model.
- `/web/tfjs/<file>`: TensorFlow.js and its WASM backend, from the repository's node_modules.

The server knows its serving directory only: which spans to read (the data root of the run
that pushed the served version) is the caller's to say, as a function version -> SpanFiles
(`pipeline/cli/serving.py` follows ML Metadata's lineage).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from pathlib import Path

from models import features
from serving.web_browser import NODE_MODULES

PREFIX = "/web"
PAGE_DIR = Path(__file__).with_name("web")
PAGE_FILES = {"": "index.html", "app.js": "app.js"}
# Where /web/tfjs/<file> is looked for under node_modules, in order.
TFJS_DIRS = ("@tensorflow/tfjs/dist", "@tensorflow/tfjs-backend-wasm/dist")
TFJS_FILES = ("tf.min.js", "tf-backend-wasm.min.js")  # what index.html loads
DEFAULT_TRIPS = 50
MAX_TRIPS = 500
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",  # WebAssembly.instantiateStreaming refuses any other type
}
# A file name inside one folder: no separator, no leading dot (so never `..`).
_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


@dataclasses.dataclass(frozen=True)
class SpanFiles:
    """The CSV files of the newest span of a data root, and how that root was chosen.

    Attributes:
        data_root: folder or URI of the `span-<k>/` folders.
        span: the newest span found there (None: none).
        files: its CSV files (local paths or URIs), in order.
        source: how the data root was chosen, in words (shown on the page).
    """

    data_root: str
    span: int | None
    files: tuple[str, ...]
    source: str


def _short(value: float) -> float:
    """A schema bound (a proto float32) as the decimal it was written as: 41.6, not 41.599998."""
    return float(f"{value:.7g}")


def form_fields(schema) -> list[dict]:
    """One form field per raw serving feature, from the schema: name, kind, choices or bounds.

    kind is `int`, `float` or `string`; a string feature with a domain has `values` (else free
    text), a numeric one with a domain `min` and/or `max`; `always_present` when the schema
    requires the feature in every trip.
    """
    domains = {domain.name: list(domain.value) for domain in schema.string_domain}
    by_name = {feature.name: feature for feature in schema.feature}
    fields = []
    for name in features.serving_raw_features():
        feature = by_name[name]
        kind = features.RAW_COLUMN_KINDS[name]
        field = {"name": name, "kind": kind, "always_present": feature.presence.min_fraction >= 1.0}
        if kind == "string":
            inline = feature.HasField("string_domain")
            field["values"] = list(feature.string_domain.value) if inline else domains.get(feature.domain, [])
        else:
            domain_name = "int_domain" if kind == "int" else "float_domain"
            if feature.HasField(domain_name):
                domain = getattr(feature, domain_name)
                for bound in ("min", "max"):
                    if domain.HasField(bound):
                        value = getattr(domain, bound)
                        field[bound] = int(value) if kind == "int" else _short(value)
        fields.append(field)
    return fields


def _json_value(value, kind: str):
    """One CSV cell as JSON: None when blank, else an int, a float or a string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    text = str(value)
    return text if text != features.MISSING_STRING else None


def read_trips(files: tuple[str, ...], limit: int) -> dict:
    """The first `limit` trips of the CSV files, in order: raw serving columns and labels.

    Read through `fileio`, so a data root in a bucket reads like a local one.

    Returns:
        {"count", "columns": {feature: [value or None]}, "big_tipper": [0, 1 or None]}; the
        label is None when the trip has no fare.
    """
    import pandas as pd
    from tfx.dsl.io import fileio

    frames, remaining = [], limit
    for path in files:
        if remaining <= 0:
            break
        with fileio.open(path, "r") as handle:
            frame = pd.read_csv(
                handle, nrows=remaining, dtype={c: "string" for c in features.RAW_STRING_COLUMNS}
            )
        missing = [c for c in features.RAW_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{path} lacks the taxi columns {missing}")
        frames.append(frame)
        remaining -= len(frame)
    frame = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(features.RAW_COLUMNS))
    )
    frame = frame.astype(object).where(frame.notna(), None)
    columns = {
        name: [_json_value(v, features.RAW_COLUMN_KINDS[name]) for v in frame[name]]
        for name in features.serving_raw_features()
    }
    tips = [math.nan if v is None else float(v) for v in frame[features.TIPS_KEY]]
    fares = [math.nan if v is None else float(v) for v in frame[features.FARE_KEY]]
    labels = features.big_tipper(tips, fares).tolist()
    big_tipper = [None if math.isnan(fare) else label for fare, label in zip(fares, labels)]
    return {"count": len(frame), "columns": columns, "big_tipper": big_tipper}


class WebPage:
    """What the `/web/` routes read: the pushed web models, the schema's fields, the spans."""

    def __init__(
        self,
        model_name: str,
        web_models: Path,
        metadata_file: str,
        span_files: Callable[[int], SpanFiles],
        node_modules: Path = NODE_MODULES,
        schema=None,
    ):
        """A page for `model_name`.

        Args:
            model_name: the served model's name (its REST path).
            web_models: the folder holding one web model folder per version (`<serving dir>/web`).
            metadata_file: the name of each web model's metadata file.
            span_files: version -> the newest span's files of the data it was trained on.
            node_modules: where the TensorFlow.js npm packages are installed.
            schema: the raw-data schema proto (default: the project's).
        """
        if schema is None:
            from schemas import load_schema

            schema = load_schema()
        self.model_name = model_name
        self.web_models = Path(web_models)
        self.metadata_file = metadata_file
        self.span_files = span_files
        self.node_modules = Path(node_modules)
        self.fields = form_fields(schema)

    def web_model(self, version: int | None) -> dict:
        """The web model pushed with `version`: its URLs and metadata, or why there is none."""
        if version is None:
            return {"available": False, "reason": "the server serves no version yet"}
        folder = self.web_models / str(version)
        path = folder / self.metadata_file
        if not path.is_file():
            return {
                "available": False,
                "reason": f"nothing was pushed to {folder} (the web gate refused this version's TF.js "
                "model, or the version was pushed without one)",
            }
        try:
            metadata = json.loads(path.read_text())
        except ValueError as error:
            return {"available": False, "reason": f"{path} is not JSON ({error})"}
        absent = [
            name
            for name in (metadata.get("model"), metadata.get("encoder"))
            if not name or not (folder / name).is_file()
        ]
        if absent or "inputs" not in metadata:
            what = f"{', '.join(map(str, absent))} missing" if absent else "no inputs description"
            return {"available": False, "reason": f"the web model in {folder} is incomplete ({what})"}
        url = f"{PREFIX}/model/{version}/"
        return {
            "available": True,
            "url": url,
            "model_url": url + metadata["model"],
            "encoder_url": url + metadata["encoder"],
            "metadata": metadata,
        }

    def tfjs_file(self, name: str) -> Path | None:
        """`name` in the TensorFlow.js packages' dist folders, or None."""
        for folder in TFJS_DIRS:
            path = self.node_modules / folder / name
            if path.is_file():
                return path
        return None

    def info(self, version: int | None) -> dict:
        """The page's /web/info.json."""
        missing = [name for name in TFJS_FILES if self.tfjs_file(name) is None]
        return {
            "model": self.model_name,
            "version": version,
            "predict_url": f"/v1/models/{self.model_name}:predict",
            "web_model": self.web_model(version),
            "tfjs": {
                "url": f"{PREFIX}/tfjs/",
                "reason": (
                    f"{', '.join(missing)} not found under {self.node_modules} (run `make setup`)"
                    if missing
                    else None
                ),
            },
            "fields": self.fields,
        }

    def trips(self, version: int, limit: int) -> dict:
        """The page's /web/trips.json: the newest span's first `limit` trips, and their source.

        Raises:
            FileNotFoundError: the data root holds no span.
        """
        found = self.span_files(version)
        if found.span is None or not found.files:
            raise FileNotFoundError(f"no span with a CSV file under {found.data_root} ({found.source})")
        trips = read_trips(found.files, limit)
        return {"data_root": found.data_root, "span": found.span, "source": found.source, **trips}

    def router(self, watcher):
        """The `/web/` routes, reading the served version from `watcher.current`."""
        from fastapi import APIRouter, Query
        from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

        router = APIRouter()

        def current() -> int | None:
            loaded = watcher.current
            return loaded.version if loaded is not None else None

        def file_response(path: Path | None, cache: str) -> object:
            if path is None or not path.is_file():
                return JSONResponse({"error": "not found"}, status_code=404)
            media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
            return FileResponse(path, media_type=media_type, headers={"Cache-Control": cache})

        def page_file(name: str):
            def serve_page_file():
                return file_response(PAGE_DIR / PAGE_FILES[name], "no-cache")

            return serve_page_file

        def info():
            return JSONResponse(self.info(current()), headers={"Cache-Control": "no-store"})

        def trips(limit: int = Query(DEFAULT_TRIPS, ge=1, le=MAX_TRIPS)):
            version = current()
            if version is None:
                return JSONResponse({"error": "the server serves no version yet"}, status_code=503)
            try:
                body = self.trips(version, limit)
            except (FileNotFoundError, ValueError) as error:
                return JSONResponse({"error": str(error)}, status_code=404)
            return JSONResponse(body, headers={"Cache-Control": "no-store"})

        def model_file(version: int, name: str):
            if not _FILE_NAME.match(name):
                return JSONResponse({"error": "not found"}, status_code=404)
            # A pushed version's folder never changes: the browser may keep its files.
            return file_response(self.web_models / str(version) / name, "public, max-age=31536000, immutable")

        def tfjs_file(name: str):
            path = self.tfjs_file(name) if _FILE_NAME.match(name) else None
            return file_response(path, "public, max-age=86400")

        router.add_api_route(PREFIX, lambda: RedirectResponse(f"{PREFIX}/"), methods=["GET", "HEAD"])
        for name in PAGE_FILES:
            router.add_api_route(f"{PREFIX}/{name}", page_file(name), methods=["GET", "HEAD"])
        router.add_api_route(f"{PREFIX}/info.json", info, methods=["GET", "HEAD"])
        router.add_api_route(f"{PREFIX}/trips.json", trips, methods=["GET", "HEAD"])
        router.add_api_route(f"{PREFIX}/model/{{version}}/{{name}}", model_file, methods=["GET", "HEAD"])
        router.add_api_route(f"{PREFIX}/tfjs/{{name}}", tfjs_file, methods=["GET", "HEAD"])
        return router
