"""`s2s serve`'s app through an in-process client: every route and every error code."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.api import Translator
from pipeline.serve.app import create_app
from pipeline.serve.batching import Batcher
from pipeline.serve.limits import ServeLimits
from pipeline.serve.server import read_api_keys
from stages.errors import InputDataError
from stages.subtitles.formats import load_subtitles, parse_subtitles

FIXTURES = Path(__file__).parent / "fixtures" / "subtitles"
PAIR = {"source": "en", "target": "es"}


@pytest.fixture(scope="module")
def translator(shared_run: Path) -> Translator:
    return Translator.load(shared_run)


@pytest.fixture(scope="module")
def client(translator: Translator) -> TestClient:
    with TestClient(create_app(translator, ServeLimits(max_file_bytes=300_000))) as test_client:
        yield test_client


def post(client: TestClient, **fields: object) -> tuple[int, dict]:
    response = client.post("/translate", json={**PAIR, **fields})
    return response.status_code, response.json()


def test_translate_answers_as_libretranslate_does(client: TestClient, translator: Translator) -> None:
    status, answer = post(client, q="Jesus wept.", format="text")
    assert status == 200 and answer == {"translatedText": translator.translate("Jesus wept.")}
    status, answer = post(client, q=["Jesus wept.", "", "And God said"])
    assert status == 200 and answer["translatedText"] == translator.translate(["Jesus wept.", "", "And God said"])


def test_a_form_request_gets_the_same_answer(client: TestClient) -> None:
    as_json = client.post("/translate", json={**PAIR, "q": "Jesus wept."}).json()
    as_form = client.post("/translate", data={**PAIR, "q": "Jesus wept."}).json()
    assert as_form == as_json


def test_lines_of_one_text_are_translated_each_and_joined(client: TestClient, translator: Translator) -> None:
    status, answer = post(client, q="Jesus wept.\nAnd God said")
    assert status == 200 and answer["translatedText"] == "\n".join(translator.translate(["Jesus wept.", "And God said"]))


def test_alternatives_are_the_nbest_list(client: TestClient, translator: Translator) -> None:
    status, answer = post(client, q="And God said", alternatives=2)
    [hyps] = translator.translate_nbest(["And God said"], 3)
    assert status == 200 and answer["translatedText"] == hyps[0].text
    assert answer["alternatives"] == [h.text for h in hyps[1:3]]
    status, capped = post(client, q="And God said", alternatives=50)  # the beam (3) holds 2 alternatives
    assert status == 200 and len(capped["alternatives"]) <= 2
    # Lines without alternatives (empty, copied through) give none; none repeats the translation or another.
    status, answer = post(client, q=["", "...", "...\n...", "And God said\n..."], alternatives=2)
    assert status == 200 and answer["alternatives"][:3] == [[], [], []]
    texts = [answer["translatedText"][3], *answer["alternatives"][3]]
    assert len(set(texts)) == len(texts) == 1 + len(hyps[1:3])


def test_language_codes_in_any_case(client: TestClient) -> None:
    status, answer = post(client, q="Jesus wept.", source="EN", target="Es")
    assert status == 200 and "translatedText" in answer


def test_a_bad_request_in_a_batch_fails_alone(translator: Translator) -> None:
    batcher = Batcher(translator, wait_ms=200, max_lines=64)
    from pipeline.serve.batching import Job

    with translator._lock:  # all three wait, then share one batch
        batcher.start()
        jobs = [Job(["Jesus wept."], 1, False), Job([None], 1, False), Job(["And God said"], 1, False)]  # type: ignore[list-item]
        futures = [batcher.submit(job) for job in jobs]
    try:
        assert futures[0].result(timeout=60)[0][0].text == translator.translate("Jesus wept.")
        assert futures[2].result(timeout=60)[0][0].text == translator.translate("And God said")
        with pytest.raises(Exception):
            futures[1].result(timeout=60)
    finally:
        batcher.close()


def test_auto_source_is_detected_as_the_models(client: TestClient) -> None:
    status, answer = post(client, q="Jesus wept.", source="auto")
    assert status == 200 and answer["detectedLanguage"] == {"confidence": 100.0, "language": "en"}


def test_attention_of_one_line(client: TestClient) -> None:
    status, answer = post(client, q="Jesus wept.", attention=True)
    weights = answer["attention"]
    assert status == 200 and len(weights["weights"]) == len(weights["target_pieces"])
    assert all(len(row) == len(weights["source_pieces"]) for row in weights["weights"])


def test_a_thousand_lines_in_one_request(translator: Translator) -> None:
    lines = [f"Jesus wept {i} times." for i in range(1000)]
    with TestClient(create_app(translator, ServeLimits(max_lines=1000, max_chars=100_000))) as big:
        response = big.post("/translate", json={**PAIR, "q": lines})
    assert response.status_code == 200
    assert response.json()["translatedText"] == translator.translate(lines)
    with TestClient(create_app(translator)) as default:  # 500 lines by default
        refused = default.post("/translate", json={**PAIR, "q": lines})
    assert refused.status_code == 413 and "1,000 lines" in refused.json()["error"]


@pytest.mark.parametrize("fields, status, message", [
    ({"q": ""}, 400, "missing q parameter"),
    ({"q": []}, 400, "missing q parameter"),
    ({"source": "en", "target": "es"}, 400, "missing q parameter"),
    ({"q": 5}, 400, "q must be a string or a list of strings"),
    ({"q": ["a", 5]}, 400, "q must be a string or a list of strings"),
    ({"q": "Hi", "source": None}, 400, "missing source parameter"),
    ({"q": "Hi", "target": "fr"}, 400, "en -> fr is not supported; this server translates en -> es"),
    ({"q": "Hi", "source": "es", "target": "en"}, 400, "es -> en is not supported"),
    ({"q": "Hi", "format": "html"}, 400, "send format text"),
    ({"q": "Hi", "alternatives": "many"}, 400, "alternatives must be a whole number"),
    ({"q": "Hi", "alternatives": -1}, 400, "alternatives must be 0 or more"),
    ({"q": "Hi\nthere", "attention": True}, 400, "one line"),
    ({"q": "Hi", "attention": "yes"}, 400, "attention must be true or false"),
    ({"q": "Hi", "alternatives": 2.5}, 400, "alternatives must be a whole number"),
    ({"q": "Hi", "alternatives": True}, 400, "alternatives must be a whole number"),
    ({"q": "a\ud800b"}, 400, "q: character 2 is a lone surrogate"),
    ({"q": ["fine", "\udfff"]}, 400, "q[1]: character 1 is a lone surrogate"),
    ({"q": "x" * 20001}, 413, "20,001 characters"),
    ({"q": "a\u0000b"}, 400, "q: character 2 is NUL"),
    ({"q": "Hi", "source": "\ud800"}, 400, "is not supported"),  # repeated in the message: no 500
])
def test_bad_requests_get_json_errors(client: TestClient, fields: dict, status: int, message: str) -> None:
    body = json.dumps({**PAIR, **fields})  # ASCII with \u escapes, as most clients send it
    response = client.post("/translate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and message in response.json()["error"]


def test_invalid_json_non_utf8_and_other_bodies(client: TestClient) -> None:
    bad = client.post("/translate", content=b'{"q": "Hi", ', headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("invalid JSON:")
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"q": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        nested = client.post("/translate", content=deep, headers={"content-type": "application/json"})
        assert nested.status_code == 400 and "nested too deeply" in nested.json()["error"]
    latin = client.post("/translate", content='{"q": "Señor", "source": "en", "target": "es"}'.encode("latin-1"),
                        headers={"content-type": "application/json"})
    assert latin.status_code == 400 and "not UTF-8" in latin.json()["error"]
    form = client.post("/translate", content="q=Se%F1or&source=en&target=es".encode(),
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 400 and "not UTF-8 (raw or %-escaped)" in form.json()["error"]
    good = client.post("/translate", content="q=Se%C3%B1or&source=en&target=es".encode(),
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert good.status_code == 200
    raw_utf8 = client.post("/translate", content="q=Señor&source=en&target=es".encode(),  # as curl --data sends it
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert raw_utf8.status_code == 200, raw_utf8.text
    raw_latin = client.post("/translate", content="q=Señor&source=en&target=es".encode("latin-1"),
                            headers={"content-type": "application/x-www-form-urlencoded"})
    assert raw_latin.status_code == 400 and "not UTF-8" in raw_latin.json()["error"]
    multipart_latin = client.post("/translate", data={"source": "en", "target": "es"},
                                  files={"q": (None, "Señor".encode("latin-1"))})
    assert multipart_latin.status_code == 400 and "form field q: byte 0xf1 is not UTF-8" in multipart_latin.json()["error"]
    multipart_utf8 = client.post("/translate", data={"source": "en", "target": "es"},
                                 files={"q": (None, "Señor".encode("utf-8"))})
    assert multipart_utf8.status_code == 200, multipart_utf8.text
    raw = client.post("/translate", content=b"Jesus wept.", headers={"content-type": "text/plain"})
    assert raw.status_code == 400 and "send JSON" in raw.json()["error"]
    array = client.post("/translate", json=["Jesus wept."])
    assert array.status_code == 400 and "expected an object" in array.json()["error"]


def test_read_only_routes(client: TestClient, translator: Translator) -> None:
    assert client.get("/languages").json() == [{"code": "en", "name": "English", "targets": ["es"]},
                                               {"code": "es", "name": "Spanish", "targets": []}]
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["languages"] == ["en", "es"]
    settings = client.get("/frontend/settings").json()
    assert settings["keyRequired"] is False and ".srt" in settings["supportedFilesFormat"]
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert 'fetch("/' not in page.text  # relative calls: the page works under a proxy's sub-path
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["error"].startswith("GET /nowhere: no such route; the routes")
    wrong = client.get("/translate")
    assert wrong.status_code == 405 and wrong.json() == {"error": "GET /translate: this route takes POST"}
    assert wrong.headers["allow"] == "POST"


def test_a_subtitle_file_keeps_every_timing_and_comes_with_its_report(client: TestClient) -> None:
    path = FIXTURES / "episode.srt"
    response = client.post("/translate_file", data=PAIR, files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 200, response.text
    answer = response.json()
    source = load_subtitles(path)
    assert answer["filename"] == "episode.es.srt" and answer["report"]["counts"]["cues_out"] == len(source.cues)
    download = client.get(answer["translatedFileUrl"])
    assert download.status_code == 200 and download.content == answer["translatedFile"].encode(answer["encoding"])
    out = parse_subtitles(download.content, Path("out.srt"))
    assert [(c.start, c.end) for c in out.cues] == [(c.start, c.end) for c in source.cues]
    assert client.get("/" + answer["translatedFilePath"]).content == download.content
    assert client.get(answer["translatedFileUrl"].replace("episode.es", "other")).status_code == 404


def test_a_long_text_file_goes_in_chunks(client: TestClient, translator: Translator) -> None:
    lines = [f"And God said {i}" for i in range(300)]  # three jobs of at most 128 lines
    response = client.post("/translate_file", data=PAIR, files={"file": ("long.txt", "\n".join(lines).encode())})
    assert response.status_code == 200
    assert response.json()["translatedFile"] == "".join(t + "\n" for t in translator.translate(lines))


def test_a_file_past_its_time_is_dropped_and_the_server_goes_on(translator: Translator) -> None:
    with TestClient(create_app(translator, ServeLimits(file_timeout_s=0.3))) as slow:
        lines = "\n".join(f"And God said {i}" for i in range(1000)).encode()
        with translator._lock:  # the model is busy for longer than the file may take
            late = slow.post("/translate_file", data=PAIR, files={"file": ("long.txt", lines)})
        assert late.status_code == 503 and "--file-timeout" in late.json()["error"]
        path = FIXTURES / "episode.srt"
        with translator._lock:
            late = slow.post("/translate_file", data=PAIR, files={"file": (path.name, path.read_bytes())})
        assert late.status_code == 503
        assert slow.post("/translate", json={**PAIR, "q": "Jesus wept."}).status_code == 200
        time.sleep(0.5)
        assert slow.get("/health").json()["waiting"] == 0  # the abandoned chunks were not searched


def test_a_text_file_is_translated_line_by_line(client: TestClient, translator: Translator) -> None:
    response = client.post("/translate_file", data=PAIR, files={"file": ("notes.txt", b"Jesus wept.\n\nAnd God said\n")})
    assert response.status_code == 200
    expected = "".join(t + "\n" for t in translator.translate(["Jesus wept.", "", "And God said"]))
    assert response.json()["translatedFile"] == expected
    for end in ("\r\n", "\r"):  # a Windows file, an old Mac one: written back with their line ends
        upload = f"Jesus wept.{end}{end}And God said{end}".encode()
        answer = client.post("/translate_file", data=PAIR, files={"file": ("notes.txt", upload)}).json()
        assert answer["translatedFile"] == expected.replace("\n", end)
        assert client.get(f"/{answer['translatedFilePath']}").content == expected.replace("\n", end).encode()


@pytest.mark.parametrize("name, data, status, message", [
    ("broken.srt", b"1\n00:00:01,000 --> nonsense\nHello\n", 400, "broken.srt"),
    ("latin.txt", "Señor\n".encode("latin-1"), 400, "latin.txt:1: byte 0xf1 is not UTF-8"),
    ("nul.txt", b"Jesus wept.\nJesus\x00.\n", 400, "nul.txt:2: a NUL byte"),
    ("movie.mkv", b"\x1aE\xdf\xa3", 400, ".mkv files are not translated here"),
    ("big.srt", b"1\n" * 5_000_000, 413, "bytes"),  # a 10 MB upload against the 0.3 MB limit
])
def test_bad_files_get_json_errors(client: TestClient, name: str, data: bytes, status: int, message: str) -> None:
    response = client.post("/translate_file", data=PAIR, files={"file": (name, data)})
    assert response.status_code == status and message in response.json()["error"], response.text


def test_file_names_that_say_nothing(client: TestClient) -> None:
    path = FIXTURES / "episode.srt"
    nameless = client.post("/translate_file", data=PAIR, files={"file": ("", path.read_bytes())})
    assert nameless.status_code == 400 and "sent without a file name" in nameless.json()["error"]
    bare = client.post("/translate_file", data=PAIR, files={"file": ("noext", path.read_bytes())})
    assert bare.status_code == 400 and "noext: a file without an extension is not translated" in bare.json()["error"]


def test_a_file_request_without_a_file(client: TestClient) -> None:
    response = client.post("/translate_file", data=PAIR, files={"other": ("a.srt", b"")})
    assert response.status_code == 400 and "missing file parameter" in response.json()["error"]
    as_json = client.post("/translate_file", json=PAIR)
    assert as_json.status_code == 400 and "multipart/form-data" in as_json.json()["error"]


def test_an_api_key_is_required_when_configured(translator: Translator, tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# deployment keys\nsecret-1\n\nsecret-2\n", encoding="utf-8")
    with TestClient(create_app(translator, api_keys=read_api_keys(str(keys)))) as locked:
        assert locked.post("/translate", json={**PAIR, "q": "Hi"}).status_code == 403
        wrong = locked.post("/translate", json={**PAIR, "q": "Hi", "api_key": "nope"})
        assert wrong.status_code == 403 and wrong.json() == {"error": "Invalid API key"}
        assert locked.post("/translate", json={**PAIR, "q": "Hi", "api_key": "secret-2"}).status_code == 200
        bearer = locked.post("/translate", json={**PAIR, "q": "Hi"}, headers={"Authorization": "Bearer secret-1"})
        assert bearer.status_code == 200
        lower = locked.post("/translate", json={**PAIR, "q": "Hi"}, headers={"Authorization": "bearer secret-1"})
        assert lower.status_code == 200
        bare = locked.post("/translate", json={**PAIR, "q": "Hi"}, headers={"Authorization": "secret-1"})
        assert bare.status_code == 403
        assert locked.get("/frontend/settings").json()["keyRequired"] is True
    keys.write_text("clé\nkey1\n", encoding="utf-8")  # keys are text: any characters
    with TestClient(create_app(translator, api_keys=read_api_keys(str(keys)))) as locked:
        for given, status in (("key1", 200), ("clé", 200), ("cle", 403), ("ключ", 403)):
            assert locked.post("/translate", json={**PAIR, "q": "Hi", "api_key": given}).status_code == status
        for given, status in (("clé".encode("utf-8"), 200), (b"cl\xe9", 200), ("ключ".encode("utf-8"), 403)):
            bearer = locked.post("/translate", json={**PAIR, "q": "Hi"}, headers={"Authorization": b"Bearer " + given})
            assert bearer.status_code == status  # UTF-8 (or Latin-1) in a header: the text the client wrote
        surrogate = locked.post("/translate", content=b'{"q": "Hi", "source": "en", "target": "es", "api_key": '
                                b'"\\ud800"}', headers={"content-type": "application/json"})
        assert surrogate.status_code == 403
    empty = tmp_path / "empty.txt"
    empty.write_text("# none yet\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="holds no key"):
        read_api_keys(str(empty))


def test_a_full_queue_and_a_timeout_get_503(translator: Translator) -> None:
    limits = ServeLimits(queue_size=1, timeout_s=0.5)
    app = create_app(translator, limits)
    with TestClient(app) as busy:
        with translator._lock:  # the model is busy: the worker holds one job, the next one fills the queue
            results: list[int] = []
            threads = [threading.Thread(target=lambda: results.append(
                busy.post("/translate", json={**PAIR, "q": "Jesus wept."}).status_code)) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert sorted(results) == [503, 503, 503]
        assert busy.post("/translate", json={**PAIR, "q": "Jesus wept."}).status_code == 200


def test_concurrent_requests_are_batched_and_answered_alike(translator: Translator) -> None:
    lines = [f"And God said {i}" for i in range(24)]
    expected = translator.translate_nbest(lines, 1)
    batcher = Batcher(translator, wait_ms=50, max_lines=64)
    batcher.start()

    async def crowd() -> list:
        return await asyncio.gather(*(batcher.translate([line]) for line in lines))

    try:
        answers = asyncio.run(crowd())
    finally:
        batcher.close()
    assert [a[0] for a in answers] == expected
    assert batcher.batches < len(lines)  # requests shared searches


def test_closing_drains_the_queue(translator: Translator) -> None:
    batcher = Batcher(translator, wait_ms=0)
    futures = []
    with translator._lock:
        batcher.start()
        from pipeline.serve.batching import Job

        futures = [batcher.submit(Job([line], 1, False)) for line in ("Jesus wept.", "And God said")]
        closer = threading.Thread(target=batcher.close)
        closer.start()
    closer.join()
    assert [f.result(timeout=1)[0][0].text for f in futures] == translator.translate(["Jesus wept.", "And God said"])
    assert json.dumps(batcher.lines) == "2"


def test_a_bug_is_a_500_with_a_json_error(translator: Translator, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    with TestClient(create_app(translator), raise_server_exceptions=False) as buggy:
        monkeypatch.setattr(translator, "translate_inputs", broken)
        response = buggy.post("/translate", json={**PAIR, "q": "Jesus wept."})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (RuntimeError); see the server's log"}


@pytest.mark.parametrize("name", ["字幕.srt", "Серия 1.srt", "a#b?c.srt"])  # (TestClient unquotes a path twice: no %)
def test_a_translated_file_of_any_name_can_be_downloaded(client: TestClient, name: str) -> None:
    path = FIXTURES / "episode.srt"
    answer = client.post("/translate_file", data=PAIR, files={"file": (name, path.read_bytes())}).json()
    stem = name[: -len(".srt")]
    assert answer["filename"] == f"{stem}.es.srt"
    for link in (answer["translatedFileUrl"], "/" + answer["translatedFilePath"]):
        download = client.get(link)
        assert download.status_code == 200, download.text
        assert download.content == answer["translatedFile"].encode(answer["encoding"])
    disposition = download.headers["content-disposition"]
    assert disposition.isascii() and "filename*=UTF-8''" in disposition


def test_a_utf16_text_file_is_named_as_such(client: TestClient) -> None:
    answer = client.post("/translate_file", data=PAIR, files={"file": ("u.txt", "Jesus wept.\n".encode("utf-16"))})
    assert answer.status_code == 400 and "UTF-16" in answer.json()["error"]


def test_format_null_or_empty_is_text(client: TestClient) -> None:
    for value in (None, ""):
        assert post(client, q="Jesus wept.", format=value)[0] == 200


def test_cors_origins_may_call_the_api_from_a_browser(translator: Translator) -> None:
    with TestClient(create_app(translator, cors_origins=["https://site.example"])) as open_to_one:
        preflight = open_to_one.options("/translate", headers={"Origin": "https://site.example",
                                                                "Access-Control-Request-Method": "POST",
                                                                "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://site.example"
        answer = open_to_one.post("/translate", json={**PAIR, "q": "Hi"}, headers={"Origin": "https://site.example"})
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://site.example"
        other = open_to_one.post("/translate", json={**PAIR, "q": "Hi"}, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    with TestClient(create_app(translator)) as closed:  # by default: no CORS headers
        answer = closed.post("/translate", json={**PAIR, "q": "Hi"}, headers={"Origin": "https://site.example"})
        assert "access-control-allow-origin" not in answer.headers
