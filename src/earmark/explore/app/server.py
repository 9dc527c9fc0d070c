"""The labelling loop's web server: search by example, listen, label, train, repeat.

Longer than ~500 lines: the session, the routes and their error handling are one
small web app, read together; labels and active learning live in sibling modules.

A Starlette app over one store and one backend configuration. It holds no logic of its
own: search is :mod:`earmark.explore.search`, labels are
:class:`~earmark.explore.labels.LabelStore` (written at once, so stopping the server
loses nothing), training and margin sampling are :mod:`earmark.explore.active`.

What keeps it safe to run on a laptop:

- It listens on 127.0.0.1 unless told otherwise, and answers only requests whose
  ``Host`` is the address it serves (a web page cannot reach it by DNS rebinding).
- Audio is served by store key only: the key is looked up in the store and the file
  the store recorded is sent. No request names a path, so none can climb out of the
  collection (``/audio/../../etc/passwd`` matches no route; a key not in the store is
  404).
- Writes take JSON (or ``application/octet-stream`` for an uploaded example): another
  site's page cannot send those without a CORS preflight, which this server never
  grants.
- The page puts every text from the store into the DOM with ``textContent``, and the
  Content-Security-Policy allows scripts from this server only, so a file called
  ``<script>...`` shows as text.
"""

from __future__ import annotations

import mimetypes
import os
import re
import tempfile
import threading
from importlib import resources
from pathlib import Path

from ...exceptions import (
    AudioError, EarmarkError, NotFound, ParameterError, PayloadTooLarge, UnsupportedMediaType,
)

__all__ = ["LabellingSession", "create_app", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Uploaded examples larger than this are refused (a minute of 48 kHz stereo float is 23 MB).
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: Uploaded examples longer than this are refused, from their header, before decoding.
MAX_UPLOAD_S = 300.0
#: JSON bodies: every request the page sends is a small flat object.
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 8
_KEY = re.compile(r"^[0-9a-f]{32}$")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,5}$")
_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class LabellingSession:
    """What the server works on: the store, its labels, one backend's clips.

    Parameters
    ----------
    store : LanceStore
        An on-disk store; labels are kept in its folder.
    backend_key : str, optional
        The backend configuration to work in; default the store's only one.
    backend : Backend, optional
        Embeds uploaded examples; default rebuilt from the name and parameters the
        store recorded, when that gives the same configuration.
    model : Model, optional
        A trained model of any kind (:func:`earmark.models.load_model`): every whole-file
        clip the page lists says what it predicts, through
        :func:`earmark.models.predict_files` (segments of a file are not scored: the
        model answers for whole files).
    """

    def __init__(self, store, *, backend_key: str | None = None, backend=None,
                 model=None) -> None:
        from ..collection import only_backend_key
        from ..labels import LabelStore

        self.store = store
        self.labels = LabelStore.for_store(store)
        if backend is not None and backend_key is None:
            backend_key = backend.cache_key()
        self.backend_key = backend_key or only_backend_key(store)
        if self.backend_key not in store.backend_keys():
            raise ParameterError(
                f"the store at {store.directory} holds no embeddings of backend configuration "
                f"{self.backend_key}; it holds {', '.join(store.backend_keys()) or 'none'}"
            )
        self._backend = backend
        self._collection = None
        self._collection_rows = -1
        self._lock = threading.Lock()
        self.model = model
        self._said: dict[str, dict | None] = {}  # store key -> the model's prediction
        self._model_lock = threading.Lock()  # a model's backend is not thread-safe

    # ---------------------------------------------------------------- collection
    def collection(self):
        """The clips of the backend's table, read again when the table has grown."""
        from ..collection import load_collection

        with self._lock:
            rows = self.store.count(self.backend_key)
            if self._collection is None or rows != self._collection_rows:
                self._collection = load_collection(self.store, self.backend_key)
                self._collection_rows = rows
            return self._collection

    def row_of(self, key) -> int:
        """The collection row of a store key; :class:`NotFound` for anything else."""
        if not isinstance(key, str) or not _KEY.match(key):
            raise NotFound("no such clip")
        row = self.collection().index_of(key)
        if row is None:
            raise NotFound("no such clip")
        return row

    def audio_file(self, key) -> Path:
        """The file the store recorded for ``key``, if it is still a file."""
        path = Path(self.collection().paths[self.row_of(key)])
        if not path.is_file():
            raise NotFound("the clip's file is no longer there")
        return path

    def backend(self):
        """The backend that embeds uploaded examples like the store's clips."""
        from ...backends import from_identity

        with self._lock:
            if self._backend is None:
                collection = self._collection
                if collection is None:
                    raise ParameterError("the collection is not loaded yet")
                backend = from_identity(
                    {"backend": collection.backend, "params": collection.params},
                    source=f"the store at {self.store.directory}",
                )
                if backend.cache_key() != self.backend_key:
                    raise ParameterError(
                        f"backend {collection.backend} as installed now embeds differently "
                        "from the store's clips (another version or weights); start the "
                        "server with --backend to choose one, or search by a stored clip"
                    )
                self._backend = backend
            return self._backend

    # ---------------------------------------------------------------- actions
    def info(self) -> dict:
        collection = self.collection()
        model = None
        if self.model is not None:
            model = {"kind": self.model.kind,
                     "classes": [str(c) for c in self.model.classes_.tolist()]}
        return {
            "backend": collection.backend,
            "backend_key": self.backend_key,
            "n_clips": len(collection),
            "targets": self.labels.targets(),
            "model": model,
        }

    def clips(self, text: str = "", limit: int = 50) -> list[dict]:
        collection = self.collection()
        return self.with_predictions(
            [collection.clip(row) for row in collection.find(text, limit=limit)]
        )

    def with_predictions(self, clips: list[dict]) -> list[dict]:
        """``clips`` with the model's answer under ``"model"`` (None without a model).

        Each whole-file clip is scored once, through :func:`~earmark.models.predict_files`
        with the store (so a model over this store's backend reads cached embeddings),
        and remembered; a file that cannot be read says why in ``error``.
        """
        from ...models import predict_files

        if self.model is None:
            return clips
        with self._model_lock:
            todo = [clip for clip in clips if clip["key"] not in self._said]
            whole = [clip for clip in todo if clip.get("start_s") is None
                     and clip.get("end_s") is None]
            for clip in todo:
                self._said[clip["key"]] = None  # a segment: not scored
            if whole:
                predictions = predict_files(self.model, [clip["path"] for clip in whole],
                                            store=self.store, top_k=3)
                for clip, prediction in zip(whole, predictions):
                    said = prediction.to_dict()
                    self._said[clip["key"]] = {
                        key: said[key] for key in ("label", "score", "top_k", "unknown", "error")
                    }
            for clip in clips:
                clip["model"] = self._said[clip["key"]]
        return clips

    def _hits(self, hits) -> list[dict]:
        collection = self.collection()
        found = []
        for hit in hits:
            row = collection.index_of(hit.key)
            if row is None:  # written after the collection was read
                continue
            clip = collection.clip(row)
            clip["distance"] = float(hit.distance)
            found.append(clip)
        return self.with_predictions(found)

    def search_by_key(self, key, k: int = 10) -> dict:
        from ..search import search

        row = self.row_of(key)
        collection = self.collection()
        hits = search(self.store, collection.X[row], backend_key=self.backend_key, k=k)
        return {"query": self.with_predictions([collection.clip(row)])[0],
                "hits": self._hits(hits)}

    def search_by_upload(self, data: bytes, *, suffix: str = ".wav", k: int = 10) -> dict:
        from ..search import search_audio

        self.collection()
        backend = self.backend()
        suffix = suffix if _SUFFIX.match(suffix or "") else ".wav"
        with tempfile.TemporaryDirectory(prefix="earmark-query-") as folder:
            path = Path(folder) / f"example{suffix}"
            path.write_bytes(data)
            try:
                from ... import audio

                duration_s = audio.info(path).duration_s
                if duration_s > MAX_UPLOAD_S:
                    raise ParameterError(
                        f"the uploaded example is {duration_s:.0f} s long; examples of at "
                        f"most {MAX_UPLOAD_S:g} s are searched (cut the part you mean)"
                    )
                hits = search_audio(self.store, path, backend, k=k)
            except AudioError as error:
                # The temporary name means nothing to the person who uploaded the file.
                reason = error.reason.replace(str(path), "the file")
                raise ParameterError(f"the uploaded example cannot be read: {reason}") from None
        return {"query": None, "hits": self._hits(hits)}

    def label(self, key, *, target, value) -> dict:
        """Set (or with ``value=None`` remove) a label; the path comes from the store."""
        from ..labels import Label, check_target

        target = check_target(target)
        row = self.row_of(key)
        if value is None:
            self.labels.remove(key, target=target)
            return {"key": key, "target": target, "value": None}
        clip = self.collection().clip(row)
        label = Label(
            target=target,
            key=key,
            value=value,
            path=clip["path"],
            start_s=clip["start_s"],
            end_s=clip["end_s"],
            backend_key=self.backend_key,
        )
        return self.labels.set(label).as_dict() | {"name": clip["name"]}

    def labels_of(self, target) -> list[dict]:
        found = []
        for label in self.labels.labels(target, backend_key=self.backend_key):
            entry = label.as_dict()
            entry["name"] = os.path.basename(label.path)
            found.append(entry)
        return found

    def train(self, target, n: int = 10) -> dict:
        from ..active import train_target
        from ..labels import check_target

        target = check_target(target)
        labels = self.labels.labels(target, backend_key=self.backend_key)
        trained = train_target(self.collection(), labels, target=target, n_uncertain=n)
        return trained.as_dict()

    def export_labels(self, target, kind: str) -> tuple[str, str]:
        """(text, file name) of one target's labels as ``csv`` or ``raven``."""
        from ..labels import check_target, labels_to_csv, labels_to_raven

        target = check_target(target)
        labels = self.labels.labels(target, backend_key=self.backend_key)
        stem = _file_stem(target)
        if kind == "csv":
            return labels_to_csv(labels), f"{stem}.labels.csv"
        if kind == "raven":
            collection = self.collection()
            durations = {}
            for label in labels:
                row = collection.index_of(label.key)
                if row is not None:
                    durations[label.key] = float(collection.clip(row).get("duration_s") or 0.0)
            return labels_to_raven(labels, durations), f"{stem}.selections.txt"
        raise ParameterError(f"expected format csv or raven, got {kind!r}")

    def save_model(self, target) -> dict:
        """Train on one target's positive and negative labels and save the model file.

        The file goes to ``models/`` in the store's folder (the name is made from the
        target, never taken from the request); ``earmark predict`` and ``detect`` read it.
        """
        import numpy as np

        from ...models import EarmarkModel
        from ..labels import check_target

        target = check_target(target)
        collection = self.collection()
        rows, y = [], []
        for label in self.labels.labels(target, backend_key=self.backend_key):
            row = collection.index_of(label.key)
            if row is not None and label.value in ("positive", "negative"):
                rows.append(row)
                y.append(label.value)
        if len(set(y)) < 2:
            raise ParameterError(
                f"label at least one positive and one negative clip of {target!r} first"
            )
        model = EarmarkModel.train(
            np.asarray(collection.X[rows]), np.asarray(y), backend=self.backend()
        )
        folder = Path(self.store.directory) / "models"
        folder.mkdir(parents=True, exist_ok=True)
        path = model.save(folder / f"{_file_stem(target)}.earmark")
        return {"target": target, "path": str(path), "n_positive": y.count("positive"),
                "n_negative": y.count("negative")}


def _file_stem(target: str) -> str:
    """A file name made from a target name: letters, digits, ``-`` and ``_`` only."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", target).strip("-")[:80]
    return stem or "labels"


def _count(value, default: int, most: int) -> int:
    try:
        number = int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise ParameterError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= most:
        raise ParameterError(f"expected a number from 1 to {most}, got {number}")
    return number


def _security_headers(app):
    """ASGI middleware adding the same security headers to every response."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + _SECURITY_HEADERS
            await send(message)

        return await app(scope, receive, send_with_headers)

    return wrapped


def allowed_hosts(host: str) -> list[str]:
    """Host headers to answer: the loopback names, and ``host`` itself."""
    if host in ("0.0.0.0", "::", ""):
        return ["*"]  # listening everywhere was asked for; any name may reach it
    names = {"127.0.0.1", "localhost", "::1", host.strip("[]").lower()}
    return sorted(names)


def create_app(session: LabellingSession, *, host: str = DEFAULT_HOST):
    """The Starlette app of a labelling session.

    Parameters
    ----------
    session : LabellingSession
    host : str
        The address it will be served on; requests naming another host are refused.

    Returns
    -------
    app : ASGI application
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    static = resources.files(__package__) / "static"

    def page(name: str) -> Response:
        return Response((static / name).read_bytes(), media_type=_STATIC[name])

    def index(request: Request) -> Response:
        return page("index.html")

    def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC or name == "index.html":
            return JSONResponse({"error": "not found"}, status_code=404)
        return page(name)

    def audio(request: Request) -> Response:
        path = session.audio_file(request.path_params["key"])
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media_type, headers={"cache-control": "no-store"})

    async def json_body(request: Request) -> dict:
        import json

        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise UnsupportedMediaType("expected Content-Type: application/json")
        raw = bytearray()
        async for chunk in request.stream():
            raw.extend(chunk)
            if len(raw) > MAX_JSON_BYTES:
                raise PayloadTooLarge(f"expected a JSON body of at most {MAX_JSON_BYTES} bytes")
        try:
            body = json.loads(bytes(raw))
        except RecursionError:
            raise ParameterError(_TOO_DEEP) from None
        except ValueError:
            raise ParameterError("expected a JSON object in the request body") from None
        if not isinstance(body, dict):
            raise ParameterError("expected a JSON object in the request body")
        _check_depth(body)
        return body

    def info(request: Request) -> Response:
        return JSONResponse(session.info())

    def clips(request: Request) -> Response:
        limit = _count(request.query_params.get("limit"), 50, 500)
        return JSONResponse({"clips": session.clips(request.query_params.get("q", ""), limit)})

    async def search(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        body = await json_body(request)
        k = _count(body.get("k"), 10, 200)
        return JSONResponse(await run_in_threadpool(session.search_by_key, body.get("key"), k))

    async def search_upload(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind != "application/octet-stream" and not kind.startswith("audio/"):
            raise UnsupportedMediaType("expected Content-Type: application/octet-stream or audio/*")
        k = _count(request.query_params.get("k"), 10, 200)
        data = bytearray()
        async for chunk in request.stream():
            data.extend(chunk)
            if len(data) > MAX_UPLOAD_BYTES:
                raise ParameterError(f"the example is larger than {MAX_UPLOAD_BYTES >> 20} MiB")
        if not data:
            raise ParameterError("the uploaded example is empty")
        suffix = os.path.splitext(request.query_params.get("name", ""))[1]
        result = await run_in_threadpool(session.search_by_upload, bytes(data), suffix=suffix, k=k)
        return JSONResponse(result)

    async def labels(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        if request.method == "GET":
            target = request.query_params.get("target", "")
            return JSONResponse({"labels": await run_in_threadpool(session.labels_of, target)})
        body = await json_body(request)
        value = body.get("value")
        if value is not None:
            from ..labels import check_value

            check_value(value)
        result = await run_in_threadpool(
            session.label, body.get("key"), target=body.get("target"), value=value
        )
        return JSONResponse(result)

    async def train(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        body = await json_body(request)
        n = _count(body.get("n"), 10, 200)
        return JSONResponse(await run_in_threadpool(session.train, body.get("target"), n))

    async def export(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        kind = request.query_params.get("format", "csv")
        text, name = await run_in_threadpool(
            session.export_labels, request.query_params.get("target", ""), kind
        )
        media_type = "text/csv; charset=utf-8" if kind == "csv" else "text/plain; charset=utf-8"
        return Response(
            text, media_type=media_type,
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    async def save_model(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        body = await json_body(request)
        return JSONResponse(await run_in_threadpool(session.save_model, body.get("target")))

    async def on_not_found(request: Request, error: Exception) -> Response:
        return JSONResponse({"error": str(error) or "not found"}, status_code=404)

    async def on_unsupported(request: Request, error: Exception) -> Response:
        return JSONResponse({"error": str(error)}, status_code=415)

    async def on_error(request: Request, error: Exception) -> Response:
        return JSONResponse({"error": str(error)}, status_code=400)

    async def on_too_large(request: Request, error: Exception) -> Response:
        return JSONResponse({"error": str(error)}, status_code=413)

    async def on_http(request: Request, error: Exception) -> Response:
        status = getattr(error, "status_code", 500)
        return JSONResponse({"error": getattr(error, "detail", "error")}, status_code=status)

    from starlette.exceptions import HTTPException

    routes = [
        Route("/", index),
        Route("/static/{name}", static_file),
        Route("/audio/{key}", audio),
        Route("/api/info", info),
        Route("/api/clips", clips),
        Route("/api/search", search, methods=["POST"]),
        Route("/api/search-upload", search_upload, methods=["POST"]),
        Route("/api/labels", labels, methods=["GET", "POST"]),
        Route("/api/labels/export", export),
        Route("/api/train", train, methods=["POST"]),
        Route("/api/save-model", save_model, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host))],
        exception_handlers={
            NotFound: on_not_found,
            UnsupportedMediaType: on_unsupported,
            PayloadTooLarge: on_too_large,
            EarmarkError: on_error,
            HTTPException: on_http,
        },
    )
    return _security_headers(app)


_TOO_DEEP = f"expected a JSON object nested at most {MAX_JSON_DEPTH} levels deep"


def _check_depth(body) -> None:
    """Refuse JSON nested deeper than :data:`MAX_JSON_DEPTH` (walked without recursion)."""
    pending = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise ParameterError(_TOO_DEEP)
        if isinstance(value, dict):
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)


def serve(
    store,
    *,
    backend_key: str | None = None,
    backend=None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    on_ready=None,
    model=None,
) -> None:
    """Serve the labelling loop until interrupted.

    Parameters
    ----------
    store : LanceStore
    backend_key, backend
        As in :class:`LabellingSession`.
    host : str
        Address to listen on; the default, 127.0.0.1, is reachable from this machine only.
    port : int
    on_ready : callable, optional
        Called with the session once the clips are loaded, before listening.
    model : Model, optional
        Shown beside every clip, as in :class:`LabellingSession`.
    """
    import uvicorn

    session = LabellingSession(store, backend_key=backend_key, backend=backend, model=model)
    session.collection()
    if on_ready is not None:
        on_ready(session)
    app = create_app(session, host=host)
    uvicorn.run(app, host=host, port=port, log_level="warning")
