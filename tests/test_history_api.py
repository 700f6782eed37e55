"""Past conversations over the service's API (issue 20): the same token/Host/Origin rules as
the rest of it, ids only (unknown ones 404), the audio by byte ranges, delete refused while a
conversation is recorded or played. Against a real `assistant serve`, on folders written
file by file (tests/support/session_folders.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import requests

from assistant.conversation import session_files as files
from assistant.history.audio import StereoWav, conversation_wav
from assistant.history.latency import MAX_POINTS, delay_series
from assistant.service.history_api import byte_range
from assistant.service.http_policy import LINK_HINT, TOKEN_HINT, link_key
from tests.support.service_harness import ServiceProcess
from tests.support.session_folders import make_conversation, snapshot, write_pcm16

FIRST = "2026-11-22_14-03-05-chat"
SECOND = "2026-11-23_09-00-00-chat"


@pytest.fixture
def folders() -> dict[str, Path]:
    second = [("user", 0.5, 1.0, "what time is it"), ("moshi", 1.5, 2.5, "it is nine")]
    return {
        FIRST: make_conversation(FIRST),
        SECOND: make_conversation(SECOND, seconds=3.0, lines=second),
    }


@pytest.fixture
def service(folders):
    svc = ServiceProcess("--no-preload")
    yield svc
    svc.close()


class Api:
    def __init__(self, svc: ServiceProcess) -> None:
        self.url, self.token = svc.client.info.url, svc.client.info.token

    def __call__(self, method: str, path: str, auth: bool = True, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        return requests.request(method, self.url + path, headers=headers, timeout=10, **kw)


def error(r: requests.Response) -> str:
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()["error"]


def test_history_endpoints_refuse_what_the_others_refuse(service, folders) -> None:
    api = Api(service)
    audio = f"/api/sessions/{FIRST}/audio"
    asked = [("GET", "/api/sessions"), ("GET", f"/api/sessions/{FIRST}"), ("GET", audio)]
    asked.append(("DELETE", f"/api/sessions/{FIRST}"))
    for method, path in asked:
        r = api(method, path, auth=False)
        assert (r.status_code, error(r)) == (401, TOKEN_HINT), path
        wrong = {"Authorization": "Bearer not-the-token"}
        assert api(method, path, auth=False, headers=wrong).status_code == 401, path
        assert api(method, path, headers={"Host": "evil.example"}).status_code == 403, path
        r = api(method, path, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403, path
    # The audio's link key opens that audio only: not another conversation's, nor anything else.
    key = link_key(api.token, audio)
    assert api("GET", f"{audio}?key={key}", auth=False).status_code == 200
    other = f"/api/sessions/{SECOND}/audio"
    r = api("GET", f"{other}?key={key}", auth=False)
    assert (r.status_code, error(r)) == (401, LINK_HINT)
    assert api("GET", f"/api/sessions/{FIRST}?key={key}", auth=False).status_code == 401
    assert api("GET", f"/api/status?key={key}", auth=False).status_code == 401
    assert api("DELETE", f"/api/sessions/{FIRST}?key={key}", auth=False).status_code == 401
    r = api("GET", f"{audio}?key={key}&key={key}", auth=False)
    assert r.status_code == 401
    # A key made with another token is worthless.
    forged = link_key("x" + api.token, audio)
    assert api("GET", f"{audio}?key={forged}", auth=False).status_code == 401
    assert all(f.is_dir() for f in folders.values())  # nothing was deleted


def test_list_search_details_and_unknown_ids(service, folders) -> None:
    api = Api(service)
    listed = api("GET", "/api/sessions").json()["conversations"]
    assert [c["id"] for c in listed] == [SECOND, FIRST]  # newest first
    first = listed[1]
    assert first["started"].startswith("2026-11-22T14:03:05") and first["duration_s"] == 6.0
    assert (first["voice"], first["quant"], first["words_user"]) == ("moshiko", "q4", 7)
    # Search: only the conversations where it was said, with the lines and their times.
    found = api("GET", "/api/sessions", params={"q": "The  WEATHER"}).json()["conversations"]
    assert [c["id"] for c in found] == [FIRST]
    assert found[0]["matches"] == [
        {"speaker": "user", "start": 3.0, "text": "tell me about the weather"}
    ]
    assert api("GET", "/api/sessions", params={"q": "nowhere said"}).json() == {"conversations": []}
    r = api("GET", "/api/sessions", params={"q": "x" * 201})
    assert r.status_code == 400 and "at most 200" in error(r)

    detail = api("GET", f"/api/sessions/{FIRST}").json()
    assert detail["conversation"]["id"] == FIRST
    assert [(x["speaker"], x["start"], x["text"]) for x in detail["lines"]] == [
        ("user", 0.4, "hello there"),
        ("moshi", 1.6, "hi how can I help"),
        ("user", 3.0, "tell me about the weather"),
        ("moshi", 4.4, "it is sunny and warm today"),
    ]
    assert detail["latency"][0] == {"t": 1.0, "delay_p50": 150.0, "delay_p95": 190.0}
    assert len(detail["latency"]) == 6
    assert detail["audio"].startswith(f"/api/sessions/{FIRST}/audio?key=")

    # A damaged folder is listed with what is wrong; a stranger's folder too, not opened.
    (folders[SECOND] / "summary.json").write_text('{"started": ')
    (stranger := folders[FIRST].parent / "not-ours").mkdir()
    (stranger / "notes.txt").write_text("mine")
    listed = {c["id"]: c for c in api("GET", "/api/sessions").json()["conversations"]}
    assert "summary.json is damaged (not JSON)" in listed[SECOND]["problems"]
    assert listed["not-ours"]["problems"][0].startswith("not a conversation")

    # Unknown ids, and ids that try to be paths: 404 (or no such endpoint), never a file read.
    for bad in ("2026-01-01_00-00-00-chat", "..", "%2e%2e", ".hidden", "a%2Fb", "x" * 300):
        for method, path in (
            ("GET", f"/api/sessions/{bad}"),
            ("GET", f"/api/sessions/{bad}/audio"),
            ("DELETE", f"/api/sessions/{bad}"),
        ):
            r = api(method, path)
            assert r.status_code == 404, (method, path, r.text)
    r = api("GET", "/api/sessions/2026-01-01_00-00-00-chat")
    assert error(r) == "no conversation '2026-01-01_00-00-00-chat'"
    assert all(f.is_dir() for f in folders.values())


def test_audio_by_byte_ranges(service, folders) -> None:
    api = Api(service)
    path = f"/api/sessions/{FIRST}/audio"
    whole = conversation_wav(folders[FIRST])
    size = len(whole)
    r = api("GET", path)
    assert r.status_code == 200 and r.content == whole
    assert r.headers["Content-Type"] == "audio/wav" and r.headers["Accept-Ranges"] == "bytes"

    def ranged(spec: str) -> requests.Response:
        return api("GET", path, headers={"Range": spec})

    r = ranged("bytes=100-199")
    assert r.status_code == 206 and r.content == whole[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{size}"
    r = ranged("bytes=-1000")
    assert r.status_code == 206 and r.content == whole[-1000:]
    r = ranged(f"bytes={size - 10}-")  # open-ended
    assert r.status_code == 206 and r.content == whole[-10:]
    r = ranged(f"bytes=40-{size * 2}")  # past the end: clipped
    assert r.status_code == 206 and r.content == whole[40:]
    r = ranged(f"bytes={size}-")
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    r = ranged("bytes=0-1,5-9")  # several ranges: the whole file (a server may ignore Range)
    assert r.status_code == 200 and r.content == whole
    head = api("HEAD", path)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == size


def test_delete_refused_while_recorded_or_played_then_done(service, folders) -> None:
    api = Api(service)
    folder = folders[FIRST]
    held = files.hold_recording(folder)  # a chat recording into it (another process's lock)
    try:
        r = api("DELETE", f"/api/sessions/{FIRST}")
        assert (r.status_code, error(r)) == (409, f"cannot delete {FIRST}: it is being recorded")
        r = api("GET", f"/api/sessions/{FIRST}/audio")
        assert (r.status_code, error(r)) == (409, f"cannot play {FIRST}: it is being recorded")
        assert api("GET", "/api/sessions").json()["conversations"][1]["recording"] is True
    finally:
        files.release(held)
    with files.using(folder):  # being played (`assistant history play`) or transcribed
        r = api("DELETE", f"/api/sessions/{FIRST}")
        assert r.status_code == 409 and "being played or transcribed" in error(r)
    assert folder.is_dir() and (folder / "user.wav").exists()

    r = api("DELETE", f"/api/sessions/{FIRST}")
    assert r.status_code == 200 and r.json() == {"deleted": FIRST, "left": []}
    assert not folder.exists() and folders[SECOND].is_dir()
    assert api("DELETE", f"/api/sessions/{FIRST}").status_code == 404
    assert [c["id"] for c in api("GET", "/api/sessions").json()["conversations"]] == [SECOND]
    # A stranger's file in a conversation's folder stays, and so does the folder.
    (folders[SECOND] / "mine.txt").write_text("keep")
    r = api("DELETE", f"/api/sessions/{SECOND}")
    assert r.json()["left"] == ["mine.txt"] and not (folders[SECOND] / "user.wav").exists()


# --- the pieces, without a service ---------------------------------------------------------------
def test_byte_range_parsing() -> None:
    assert byte_range(None, 100) is None
    assert byte_range("bytes=0-", 100) == (0, 100)
    assert byte_range("bytes=10-19", 100) == (10, 20)
    assert byte_range("bytes=90-200", 100) == (90, 100)
    assert byte_range("bytes=-30", 100) == (70, 100)
    assert byte_range("bytes=-300", 100) == (0, 100)
    for ignored in ("bytes=5-1", "bytes=-", "items=0-1", "bytes=0-1,4-5", "bytes=a-b"):
        assert byte_range(ignored, 100) is None, ignored
    for unsatisfiable in ("bytes=100-", "bytes=150-160", "bytes=-0"):
        with pytest.raises(ValueError):
            byte_range(unsatisfiable, 100)


def test_stereo_wav_ranges_are_the_whole_files_pieces(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_pcm16(tmp_path / "user.wav", rng.uniform(-0.5, 0.5, 24000 * 2 + 7))
    write_pcm16(tmp_path / "moshi.wav", rng.uniform(-0.5, 0.5, 24000 + 3))
    for damaged in (False, True):
        if damaged:  # a recording cut short (a crash): read as far as its data goes
            raw = (tmp_path / "user.wav").read_bytes()
            (tmp_path / "user.wav").write_bytes(raw[:-1001])
        whole = conversation_wav(tmp_path)
        wav = StereoWav(tmp_path)
        assert wav.size == len(whole) and wav.read(0, wav.size) == whole
        pick = random.Random(1)
        for _ in range(200):
            start = pick.randrange(0, wav.size)
            end = pick.randrange(start, wav.size + 10)
            assert wav.read(start, end) == whole[start:end], (start, end)
    (tmp_path / "user.wav").unlink()  # a missing side is silence
    assert StereoWav(tmp_path).read(0, 10**9) == conversation_wav(tmp_path)


def test_delay_series_is_bounded_and_skips_damage(tmp_path: Path) -> None:
    lines = [json.dumps(snapshot(s, 100.0 + s % 7)) for s in range(1, 2001)]
    lines[5] = lines[5][:40]  # cut by a crash
    lines.insert(9, '{"elapsed_s": 9.5, "stages": {}}')  # not a snapshot
    quiet = snapshot(0.5, 0.0)
    quiet["stages"]["delay"]["window"]["count"] = 0  # no frame played yet
    (tmp_path / "metrics.jsonl").write_text(json.dumps(quiet) + "\n" + "\n".join(lines) + "\n")
    points = delay_series(tmp_path)
    assert len(points) <= MAX_POINTS and points[0].t == 1.0
    assert max(p.delay_p95 for p in points) == 146.0  # a spike survives the thinning
    full = delay_series(tmp_path, max_points=10_000)
    assert len(full) == 1999 and 6.0 not in [p.t for p in full]
    assert delay_series(tmp_path / "missing") == []
