"""The web page in a real browser: headless Chromium (Debian's `chromium` package, driven by
Playwright) against `s2s serve` on 127.0.0.1 with a tiny trained run. Also the server
process itself: it answers, and on SIGTERM finishes the request in flight before it exits.

A screenshot of each page state goes to build/test-artifacts/."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from pipeline.api import Translator
from stages.subtitles.formats import load_subtitles, parse_subtitles

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "test-artifacts"
EPISODE = Path(__file__).parent / "fixtures" / "subtitles" / "episode.srt"
S2S = [sys.executable, "-c", "from pipeline.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(run: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([*S2S, "serve", "--run", str(run), "--port", str(port), *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"s2s serve exited with {process.returncode}:\n{process.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                if json.load(answer)["status"] == "ok":
                    return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("s2s serve did not answer /health within 120 s")


@pytest.fixture(scope="module")
def server(shared_run: Path) -> Iterator[str]:
    process, url = start_server(shared_run)
    yield url
    process.terminate()
    process.wait(timeout=30)
    if process.stdout:
        process.stdout.close()


def post_json(url: str, fields: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(fields).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return dict(json.load(answer))


def test_sigterm_finishes_the_request_in_flight(shared_run: Path) -> None:
    process, url = start_server(shared_run)
    lines = [f"And God said, Let there be light {i}." for i in range(400)]
    answers: list[dict] = []
    sender = threading.Thread(target=lambda: answers.append(
        post_json(f"{url}/translate", {"q": lines, "source": "en", "target": "es"})))
    sender.start()
    time.sleep(0.5)  # the request is in the server, being translated
    process.send_signal(signal.SIGTERM)
    sender.join(timeout=120)
    # uvicorn shuts down gracefully, then re-raises the signal so the parent sees it
    assert process.wait(timeout=120) in (0, -signal.SIGTERM)
    log = process.stdout.read() if process.stdout else ""
    if process.stdout:
        process.stdout.close()
    assert len(answers) == 1 and len(answers[0]["translatedText"]) == len(lines), log
    assert "Finished server process" in log, log


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    binary = os.environ.get("S2S_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("no chromium binary (apt-get install chromium; .ci/run installs it)")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=binary, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_a_person_translates_a_sentence_and_a_subtitle_file(browser, server: str, shared_run: Path,
                                                           tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    translator = Translator.load(shared_run)
    page = browser.new_context(accept_downloads=True).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.wait_for_function("document.getElementById('pair').textContent.includes('→')")

    page.fill("#source", "Jesus wept.")
    page.select_option("#alternatives", "2")
    page.check("#attention")
    page.click("#translate")
    page.wait_for_selector("#heatmap tr")
    [hyps] = translator.translate_nbest(["Jesus wept."], 3, alignments=True)
    assert page.inner_text("#translation") == hyps[0].text
    assert page.locator("#alternatives-list li").all_inner_texts() == [h.text for h in hyps[1:3]]  # distinct ones
    assert page.locator("#heatmap tr").count() == 1 + len(hyps[0].target_pieces or [])
    page.screenshot(path=str(ARTIFACTS / "browser-text.png"), full_page=True)

    dropped = page.evaluate_handle(  # a file dropped on the box, as a person drags one from a file manager
        "(text) => { const dt = new DataTransfer(); dt.items.add(new File([text], 'episode.srt')); return dt; }",
        EPISODE.read_text(encoding="utf-8"))
    page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
    page.wait_for_selector("#download:not(.hidden)", timeout=60_000)
    source = load_subtitles(EPISODE)
    assert page.locator("#cues tbody tr").count() == len(source.cues)
    with page.expect_download() as download_info:
        page.click("#download")
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == "episode.es.srt"
    out = parse_subtitles(saved.read_bytes(), saved)
    assert [(c.start, c.end) for c in out.cues] == [(c.start, c.end) for c in source.cues]
    page.screenshot(path=str(ARTIFACTS / "browser-subtitles.png"), full_page=True)

    page.set_input_files("#file", {"name": "broken.srt", "mimeType": "text/plain",
                                   "buffer": b"1\n00:00:01,000 --> nonsense\nHello\n"})
    page.wait_for_selector("#file-status.error")
    assert "broken.srt" in page.inner_text("#file-status")
    assert errors == []
