"""The HTTP app of `s2s serve`: a LibreTranslate-compatible API and the web page.

Routes (LibreTranslate's, https://github.com/LibreTranslate/LibreTranslate, so its
clients work unchanged): POST /translate, POST /translate_file, GET /languages,
GET /frontend/settings; and GET /health, GET /files/{token}/{name} (a translated file),
GET / (the page). Errors are JSON `{"error": message}`: 400 bad request, 403 bad API key,
404 unknown route or file, 413 over a size limit, 503 queue full, timed out or shutting
down, 500 only for a bug.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections import OrderedDict
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import asynccontextmanager
from pathlib import Path
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    NamedTuple,
    Optional,
    Sequence,
)
from urllib.parse import parse_qsl, quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from pipeline.api import Hypothesis, Translator
from pipeline.serve.batching import Batcher, Closed, Job, QueueFull
from pipeline.serve.limits import ServeLimits
from stages.errors import S2SError
from stages.files import line_end_of
from stages.subtitles.formats import FORMATS

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
KEPT_FILES = 64  # translated files kept for download, newest first
_FORM_SLACK = 64 * 1024  # bytes of a request besides its text or file (field names, JSON, multipart)
_JSON_BYTES = 12  # most bytes one character can take in a request (JSON's escaped surrogate pairs)
FILE_CHUNK = 128  # lines of a file per job, so that other requests get turns between them
ROUTES = "POST /translate, POST /translate_file, GET /languages, GET /frontend/settings, GET /health, GET /"
_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese"}


class Upload(NamedTuple):
    filename: str
    data: bytes


class Problem(Exception):
    """A request s2s refuses: its HTTP status and the message for `{"error": ...}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def make_batcher(translator: Translator, limits: ServeLimits) -> Batcher:
    return Batcher(translator, queue_size=limits.queue_size, wait_ms=limits.wait_ms,
                   max_wait_ms=limits.max_wait_ms, max_lines=limits.batch_lines)


def create_app(translator: Translator, limits: ServeLimits = ServeLimits(), *,
               api_keys: frozenset[str] = frozenset(), batcher: Optional[Batcher] = None,
               cors_origins: Sequence[str] = ()) -> FastAPI:
    """The app over one loaded model; `api_keys` non-empty: every translation needs one.
    Without `batcher`, the app makes one and runs its worker in a thread; with one, its
    owner runs the worker (`s2s serve`: the main thread). `cors_origins`: web pages of
    these origins (`*`: any) may call the API from a browser (Starlette's CORS
    middleware answers their preflight requests)."""
    own = batcher is None
    worker = make_batcher(translator, limits) if batcher is None else batcher
    files: OrderedDict[str, tuple[str, bytes]] = OrderedDict()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if own:
            worker.start()
        yield
        await run_in_threadpool(worker.close)  # on SIGTERM: uvicorn lets requests finish, then this drains

    app = FastAPI(title="s2s", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher = worker
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    _error_handlers(app)
    source, target = translator.languages

    @app.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": translator.name, "languages": [source, target],
                "waiting": worker.waiting(), "batches": worker.batches, "lines": worker.lines,
                "busy_s": round(worker.busy_s, 3)}

    @app.get("/languages")
    async def languages() -> list[dict[str, Any]]:
        return [{"code": source, "name": _NAMES.get(source, source), "targets": [target]},
                {"code": target, "name": _NAMES.get(target, target), "targets": []}]

    @app.get("/frontend/settings")
    async def settings() -> dict[str, Any]:
        return {"keyRequired": bool(api_keys), "charLimit": limits.max_chars, "lineLimit": limits.max_lines,
                "fileSizeLimit": limits.max_file_bytes, "filesTranslation": True,
                "supportedFilesFormat": [f".{f}" for f in FORMATS] + [".txt"],
                "alternatives": min(limits.max_alternatives, translator.config.beam_size - 1),
                "language": {"source": {"code": source}, "target": {"code": target}}}

    @app.post("/translate")
    async def translate(request: Request) -> dict[str, Any]:
        fields = await _fields(request, limits.max_chars * _JSON_BYTES + _FORM_SLACK, "--max-chars")
        _check_key(fields, request, api_keys)
        texts = _texts(fields)
        _check_pair(fields, source, target)
        if str(fields.get("format") or "text") != "text":  # null or "" as LibreTranslate: text
            raise Problem(400, f"format {fields['format']!r}: this server translates plain text; send format text")
        alternatives = _count(fields, "alternatives", min(limits.max_alternatives, translator.config.beam_size - 1))
        attention = _flag(fields, "attention")
        lines = [line for text in texts for line in text.split("\n")]
        _check_size(texts, lines, limits)
        if attention and len(lines) != 1:
            raise Problem(400, "attention: send one line of text to see its attention")
        found = await _search(worker, list(translator.prepare_inputs(lines)), 1 + alternatives, attention, limits)
        out, alts, start = [], [], 0
        for text in texts:
            mine = found[start : start + text.count("\n") + 1]
            start += len(mine)
            out.append("\n".join(h[0].text if h else "" for h in mine))
            candidates = ["\n".join((h[k] if k < len(h) else h[0]).text if h else "" for h in mine)
                          for k in range(1, 1 + alternatives)]  # line by line: a line's k-th, else its best
            alts.append([c for i, c in enumerate(candidates) if c != out[-1] and c not in candidates[:i]])
        single = isinstance(fields["q"], str)
        answer: dict[str, Any] = {"translatedText": out[0] if single else out}
        if str(fields.get("source")).lower() == "auto":
            detected = {"confidence": 100.0, "language": source}
            answer["detectedLanguage"] = detected if single else [detected] * len(out)
        if alternatives:
            answer["alternatives"] = alts[0] if single else alts
        if attention:
            best = found[0][0] if found[0] else None
            answer["attention"] = {"source_pieces": best.source_pieces if best else [],
                                   "target_pieces": best.target_pieces if best else [],
                                   "weights": best.attention if best else []}
        return answer

    @app.post("/translate_file")
    async def translate_file(request: Request) -> dict[str, Any]:
        fields = await _fields(request, limits.max_file_bytes + _FORM_SLACK, "--max-file-mb", form_only=True)
        _check_key(fields, request, api_keys)
        _check_pair(fields, source, target)
        upload = _upload(fields)
        data, name = upload.data, Path(upload.filename).name
        if len(data) > limits.max_file_bytes:
            raise Problem(413, f"{name}: {len(data):,} bytes; this server takes files up to "
                               f"{limits.max_file_bytes:,} bytes (s2s serve --max-file-mb)")
        extension = Path(name).suffix.lower().lstrip(".")
        if extension not in FORMATS and extension != "txt":
            what = f".{extension} files are" if extension else "a file without an extension is"
            raise Problem(400, f"{name}: {what} not translated here; send a file named "
                               f"{', '.join('*.' + f for f in FORMATS)} or *.txt")
        cancelled = threading.Event()
        search = _blocking_search(worker, cancelled)
        if extension == "txt":
            lines, end = _text_lines(name, data), line_end_of(data)

            def work() -> dict[str, Any]:
                found = search(list(translator.prepare_inputs(lines)), 1)
                out = "".join((h[0].text if h else "") + end for h in found)  # with the upload's line ends
                return {"format": "txt", "encoding": "utf-8", "translatedFile": out, "data": out.encode("utf-8")}
        else:
            cue_limits: dict[str, Any] = {k: _number(fields, k) for k in ("max_chars", "max_lines", "max_cps") if k in fields}

            def work() -> dict[str, Any]:
                result, report = translator.translate_subtitles(data, name=name, search=search, **cue_limits)
                return {"format": result.format, "encoding": result.encoding, "translatedFile": result.text,
                        "report": report, "cues": result.cues, "data": result.data}

        try:
            answer = await _with_timeout(_unless_gone(request, run_in_threadpool(work), cancelled),
                                         limits.file_timeout_s)
        except Closed:
            raise Problem(503, "the server is shutting down; retry on another instance") from None
        finally:
            cancelled.set()  # a request that timed out or went away stops at its next chunk
        out_name = f"{Path(name).stem}.{target or 'translated'}{Path(name).suffix}"
        token = secrets.token_urlsafe(12)
        files[token] = (out_name, answer.pop("data"))
        while len(files) > KEPT_FILES:
            files.popitem(last=False)
        path = f"files/{token}/{quote(out_name, safe='')}"  # a name with #, ? or % is part of the path
        return {"translatedFileUrl": f"{request.base_url}{path}", "translatedFilePath": path, "filename": out_name,
                **answer}

    @app.get("/files/{token}/{name}")
    async def download(token: str, name: str) -> Response:
        if token not in files or files[token][0] != name:
            raise Problem(404, f"{name}: no such translated file here (files are kept for the last {KEPT_FILES})")
        fallback = name.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("\\", "_")
        return Response(files[token][1], media_type="application/octet-stream",  # RFC 6266/5987: any name
                        headers={"Content-Disposition": f"attachment; filename=\"{fallback}\"; "
                                                        f"filename*=UTF-8''{quote(name, safe='')}"})

    return app


def _printable(message: str) -> str:
    """A message that encodes as UTF-8: a lone surrogate a client sent (`"source":
    "\\ud800"`) and the message repeats is written as its escape."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def _error_handlers(app: FastAPI) -> None:
    async def problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return JSONResponse({"error": _printable(exc.message)}, status_code=exc.status)

    async def s2s_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": _printable(str(exc))}, status_code=400)  # bad input, named by the stages

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        where = f"{request.method} {request.url.path}"
        message = {404: f"{where}: no such route; the routes are {ROUTES}",
                   405: f"{where}: this route takes {(exc.headers or {}).get('Allow', 'another method')}"}
        return JSONResponse({"error": message.get(exc.status_code, str(exc.detail))}, status_code=exc.status_code,
                            headers=exc.headers)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"Invalid request: {exc}"}, status_code=400)

    async def bug(_: Request, exc: Exception) -> JSONResponse:  # uvicorn logs the traceback
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server's log"},
                            status_code=500)

    app.add_exception_handler(Problem, problem)
    app.add_exception_handler(S2SError, s2s_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, bug)


async def _body(request: Request, limit: int, option: str) -> bytes:
    """The request body, refused (413) past `limit` bytes before it is all read."""
    declared = request.headers.get("content-length", "")
    too_big = (f"this server takes requests of at most {limit:,} bytes (set by s2s serve {option}); "
               f"send less per request")
    if declared.isdigit() and int(declared) > limit:
        raise Problem(413, f"the request has {int(declared):,} bytes; {too_big}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"the request has over {limit:,} bytes; {too_big}")
        chunks.append(chunk)
    return b"".join(chunks)


async def _fields(request: Request, limit: int, option: str, form_only: bool = False) -> dict[str, Any]:
    """The request's fields, from JSON or a form (urlencoded or multipart), as LibreTranslate takes them."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await _body(request, limit, option)
    if kind == "application/json" and not form_only:
        try:
            data = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise Problem(400, f"the request body is not UTF-8 (byte {body[exc.start]:#04x} at offset "
                               f"{exc.start}); send UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise Problem(400, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except RecursionError:  # Python's parser recurses once per level of [ or {
            raise Problem(400, "invalid JSON: nested too deeply; send an object such as "
                               "{\"q\": \"Hello\", \"source\": \"en\", \"target\": \"es\"}") from None
        if not isinstance(data, dict):
            raise Problem(400, "invalid JSON: expected an object such as {\"q\": \"Hello\", \"source\": ...}")
        return data
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        wanted = "multipart/form-data with a file field" if form_only else "JSON (application/json) or a form"
        raise Problem(400, f"Content-Type {kind or '(none)'}: send {wanted}")
    if kind == "application/x-www-form-urlencoded":  # read here: Starlette would replace bad bytes silently
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise Problem(400, "the form is not UTF-8 (raw or %-escaped); send UTF-8 text") from None
        grouped: dict[str, list[str]] = {}
        for key, value in pairs:
            grouped.setdefault(key, []).append(value)
        return {key: values if key == "q" and len(values) > 1 else values[0] for key, values in grouped.items()}
    _check_utf8_fields(body, request.headers.get("content-type", ""))
    request._body = body  # Starlette reads the form from the body already read
    fields: dict[str, Any] = {}
    async with request.form(max_files=1, max_fields=64, max_part_size=limit) as form:
        for key in form.keys():
            values = [Upload(v.filename or "", await v.read()) if isinstance(v, UploadFile) else v
                      for v in form.getlist(key)]
            fields[key] = values if key == "q" and len(values) > 1 else values[0]
    return fields


def _check_utf8_fields(body: bytes, content_type: str) -> None:
    """400 for a multipart text field (not a file) that is not UTF-8: Starlette would
    read it as Latin-1 without a word."""
    boundary = next((part.split("=", 1)[1].strip('" ') for part in content_type.split(";")
                     if part.strip().lower().startswith("boundary=")), "")
    if not boundary:
        return
    for part in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        head, _, value = part.partition(b"\r\n\r\n")
        if b"filename=" in head or not head.strip(b"-\r\n"):
            continue
        try:
            value.removesuffix(b"\r\n").decode("utf-8")
        except UnicodeDecodeError as exc:
            name = head.split(b'name="', 1)[-1].split(b'"', 1)[0].decode("latin-1")
            raise Problem(400, f"form field {name}: byte {value[exc.start]:#04x} is not UTF-8; send UTF-8 text") from None


def _check_key(fields: dict[str, Any], request: Request, keys: frozenset[str]) -> None:
    if not keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    given = str(fields.get("api_key", "")) or (_header_text(token.strip()) if scheme.lower() == "bearer" else "")
    raw = given.encode("utf-8", "surrogatepass")  # a lone surrogate is just a wrong key
    if not any(secrets.compare_digest(raw, key.encode("utf-8")) for key in keys):  # any text
        raise Problem(403, "Invalid API key" if given else "Invalid request: missing api_key parameter")


def _header_text(value: str) -> str:
    """A header's value as the client wrote it: HTTP reads header bytes as Latin-1, and
    clients send UTF-8 (`Bearer clé`); bytes that are not UTF-8 stay as read."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _texts(fields: dict[str, Any]) -> list[str]:
    q = fields.get("q")
    if q is None or q == "" or q == []:
        raise Problem(400, "Invalid request: missing q parameter")
    texts = [q] if isinstance(q, str) else q
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise Problem(400, "Invalid request: q must be a string or a list of strings")
    for number, text in enumerate(texts):
        where = "q" if isinstance(q, str) else f"q[{number}]"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise Problem(400, f"{where}: character {exc.start + 1} is a lone surrogate ({text[exc.start]!r}), "
                               f"not Unicode text; send valid UTF-8 / JSON string escapes") from None
        if "\0" in text:  # as the CLI refuses a NUL byte in a text file
            raise Problem(400, f"{where}: character {text.index(chr(0)) + 1} is NUL (U+0000), not text; remove it")
    return [t.replace("\r\n", "\n").replace("\r", "\n") for t in texts]


def _check_pair(fields: dict[str, Any], source: str, target: str) -> None:
    for key in ("source", "target"):
        if not fields.get(key):
            raise Problem(400, f"Invalid request: missing {key} parameter (this server translates "
                               f"{source or '?'} -> {target or '?'})")
    asked_source, asked_target = str(fields["source"]).lower(), str(fields["target"]).lower()
    if (source and asked_source not in (source, "auto")) or (target and asked_target != target):
        raise Problem(400, f"{asked_source} -> {asked_target} is not supported; this server translates "
                           f"{source} -> {target}")


def _count(fields: dict[str, Any], key: str, most: int) -> int:
    """A whole number field of 0..most (more is capped at most)."""
    raw = fields.get(key, 0)
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise Problem(400, f"Invalid request: {key} must be a whole number, not {raw!r}")
    value = raw
    if value < 0:
        raise Problem(400, f"Invalid request: {key} must be 0 or more, not {value}")
    return min(value, max(most, 0))


def _number(fields: dict[str, Any], key: str) -> float:
    try:
        return float(fields[key]) if key == "max_cps" else int(fields[key])
    except (TypeError, ValueError):
        raise Problem(400, f"Invalid request: {key} must be a number, not {fields[key]!r}") from None


def _check_size(texts: list[str], lines: list[str], limits: ServeLimits) -> None:
    if len(lines) > limits.max_lines:
        raise Problem(413, f"q holds {len(lines):,} lines; this server takes at most {limits.max_lines:,} per "
                           f"request (s2s serve --max-lines); split the text over several requests")
    chars = sum(len(t) for t in texts)
    if chars > limits.max_chars:
        raise Problem(413, f"q holds {chars:,} characters; this server takes at most {limits.max_chars:,} per "
                           f"request (s2s serve --max-chars); split the text over several requests")


async def _search(batcher: Batcher, inputs: list[str], n_best: int, alignments: bool,
                  limits: ServeLimits) -> list[list[Hypothesis]]:
    try:
        return await batcher.translate(inputs, n_best, alignments, limits.timeout_s)
    except QueueFull:
        raise Problem(503, f"the server is busy ({limits.queue_size} requests waiting); retry shortly") from None
    except Closed:
        raise Problem(503, "the server is shutting down; retry on another instance") from None
    except asyncio.TimeoutError:
        raise Problem(503, f"the translation took over {limits.timeout_s:g} s (s2s serve --timeout); retry, "
                           f"or send less text per request") from None


def _flag(fields: dict[str, Any], key: str) -> bool:
    raw = fields.get(key, False)
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() in ("1", "true", "0", "false", ""):
        return str(raw).lower() in ("1", "true")
    raise Problem(400, f"Invalid request: {key} must be true or false, not {raw!r}")


def _upload(fields: dict[str, Any]) -> Upload:
    upload = fields.get("file")
    if isinstance(upload, Upload) and upload.filename:
        return upload
    if "file" in fields:  # a part without a filename arrives as a plain field
        raise Problem(400, "file: sent without a file name; send it with its name (curl -F file=@episode.srt), "
                           "which must end in .srt, .vtt, .ass, .ssa or .txt")
    raise Problem(400, "Invalid request: missing file parameter (send the file as multipart field 'file')")


async def _unless_gone(request: Request, work: Awaitable[Any], cancelled: threading.Event) -> Any:
    """`work`'s result; if the client goes away first, `cancelled` is set, so the file's
    search stops at its next chunk, and Closed is raised (no one is left to answer)."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a stopped search's Closed, consumed
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.5)
        if done:
            return task.result()
        if await request.is_disconnected():
            cancelled.set()
            log.info("%s: the client went away; its file stops at the next chunk", request.url.path)
            raise Closed()


async def _with_timeout(work: Awaitable[Any], timeout_s: float) -> Any:
    try:
        return await asyncio.wait_for(work, timeout_s)
    except asyncio.TimeoutError:
        raise Problem(503, f"the file took over {timeout_s:g} s (s2s serve --file-timeout); send a shorter "
                           f"file, or raise the limit") from None


def _blocking_search(batcher: Batcher, cancelled: threading.Event) -> Callable[[list[str], int], list[list[Hypothesis]]]:
    """A search for a file, run in another thread: FILE_CHUNK lines per job on the
    batcher's queue, so other requests get turns. Once `cancelled`, a chunk not yet
    started is dropped and no other is sent (Closed)."""
    def search(inputs: list[str], n_best: int) -> list[list[Hypothesis]]:
        found: list[list[Hypothesis]] = []
        for start in range(0, len(inputs), FILE_CHUNK):
            if cancelled.is_set():
                raise Closed()
            future = _submit_waiting(batcher, Job(inputs[start : start + FILE_CHUNK], n_best, False), cancelled)
            while True:
                try:
                    found += future.result(timeout=0.05)
                    break
                except FutureTimeout:
                    if cancelled.is_set() and future.cancel():
                        raise Closed() from None
        return found

    return search


def _submit_waiting(batcher: Batcher, job: Job, cancelled: threading.Event) -> Any:
    """Submit, waiting for room in the queue rather than failing (a file's next chunk)."""
    while True:
        try:
            return batcher.submit(job)
        except QueueFull:
            if cancelled.wait(0.05):
                raise Closed() from None


def _text_lines(name: str, data: bytes) -> list[str]:
    """A .txt upload's lines (UTF-8, a BOM allowed); 400 naming the line otherwise."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Problem(400, f"{name}: UTF-16 text (it starts with a UTF-16 byte-order mark); re-save the file as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise Problem(400, f"{name}:{line}: byte {data[exc.start]:#04x} is not UTF-8; re-save the file as UTF-8") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise Problem(400, f"{name}:{line}: a NUL byte; this is not a text file (UTF-16? convert it to UTF-8)")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines
