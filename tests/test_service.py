"""`assistant serve` and `assistant ctl`: the control cycle on a tiny model with file audio,
failures that leave the service up, and the API's refusals."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from assistant.audio.sound_files import read_audio, write_wav
from assistant.checkpoint.config import MoshiConfig
from assistant.errors import ServiceRefusedError
from tests.support.service_harness import SPEECH, ServiceProcess, wait_for
from tests.support.warm_cli import WarmStarter, run_assistant


@pytest.fixture
def service(tiny_checkpoint):
    svc = ServiceProcess("--checkpoint", str(tiny_checkpoint("bf16")), "--input", str(SPEECH))
    yield svc
    svc.close()


@dataclass(frozen=True)
class Ran:
    returncode: int | None
    output: str  # stdout and stderr together


@pytest.fixture
def ctl(warm_starter: WarmStarter | None) -> Callable[..., Ran]:
    """`assistant ctl *args` in a process of its own, forked from a warm interpreter (what is
    shown is the command's answer, not the interpreter's start)."""

    def run(*args: str) -> Ran:
        code, output, _ = run_assistant(
            warm_starter, ["ctl", *args], env=dict(os.environ), timeout=60
        )
        return Ran(code, output)

    return run


def frames(client) -> int:
    metrics = client.live()["metrics"]
    return metrics["frames"]["finished"] if metrics else 0


@pytest.mark.slow
def test_full_control_cycle(service: ServiceProcess, tiny_checkpoint, ctl) -> None:
    c = service.client
    status = wait_for(lambda: c.status()["model"] and c.status(), what="the preloaded model")
    assert status["state"] == "idle" and status["model"]["quantization"] == "bf16"

    assert ctl("start").returncode == 0
    wait_for(lambda: c.status()["state"] in ("listening", "speaking"), what="listening")
    wait_for(lambda: frames(c) > 5, what="frames")
    before = frames(c)
    wait_for(lambda: frames(c) > before + 3, what="frames to keep coming")

    # Mute: the microphone turns to silence, the conversation goes on.
    assert ctl("mute").returncode == 0
    assert c.status()["muted"] is True
    wait_for(lambda: frames(c) > before + 8, what="frames while muted")
    assert ctl("unmute").returncode == 0 and c.status()["muted"] is False

    # The live stream, as `ctl watch` sees it.
    watch = ctl("watch", "--count", "2")
    assert watch.returncode == 0 and watch.output.count("step p50") == 2, watch.output

    assert ctl("stop").returncode == 0
    wait_for(lambda: c.status()["state"] == "idle", what="idle after stop")
    session = Path(c.status()["session"])
    summary = json.loads((session / "summary.json").read_text())
    assert summary["frames_stepped"] > 0 and (session / "trace.json").exists()

    # Switch to another checkpoint: the model reloads, and the next conversation uses it.
    switched = ctl("switch", "--checkpoint", str(tiny_checkpoint("q8")))
    assert switched.returncode == 0, switched.output
    status = wait_for(
        lambda: (s := c.status())["model"] and s["model"]["quantization"] == "q8" and s,
        what="the q8 model",
    )
    assert status["quant"] == "q8" and status["state"] == "idle"
    c.start()
    wait_for(lambda: c.status()["conversations"] == 2 and frames(c) > 2, what="second talk")
    c.stop()
    wait_for(lambda: c.status()["state"] == "idle", what="idle")

    assert ctl("quit").returncode == 0
    assert service.proc.wait(timeout=30) == 0
    assert "Service stopped." in service.output()


@pytest.fixture
def long_talk(tiny_checkpoint, tmp_path: Path):
    """A service whose conversation lasts 30 s of speech: long enough, on a loaded machine,
    for the steps of a test to happen while it talks (hello.wav ends after 5 s)."""
    speech = write_wav(tmp_path / "long.wav", np.tile(read_audio(SPEECH), 6))
    svc = ServiceProcess("--checkpoint", str(tiny_checkpoint("bf16")), "--input", str(speech))
    yield svc
    svc.close()


@pytest.mark.slow
def test_switch_while_talking_restarts_and_bad_switch_harms_nothing(
    long_talk: ServiceProcess, tiny_checkpoint, tmp_path: Path, ctl
) -> None:
    c = long_talk.client
    wait_for(lambda: c.status()["model"], what="model")
    c.start()
    wait_for(lambda: frames(c) > 3, what="frames")

    # A checkpoint that is not there: refused with the reason, the conversation unharmed.
    with pytest.raises(ServiceRefusedError, match="cannot switch") as refused:
        c.switch(checkpoint=str(tmp_path / "nowhere"))
    assert refused.value.status == 422
    missing = ctl("switch", "--checkpoint", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "cannot switch" in missing.output
    assert missing.output.count("\n") == 1  # one line, no traceback
    count = frames(c)
    wait_for(lambda: frames(c) > count + 3, what="frames after the refusal")
    assert c.status()["state"] in ("listening", "speaking")
    with pytest.raises(ServiceRefusedError, match="already"):
        c.start()  # one conversation at a time

    # A switch while talking: the conversation restarts on the new model.
    c.switch(checkpoint=str(tiny_checkpoint("q4")))
    wait_for(
        lambda: (
            (s := c.status())["conversations"] == 2
            and s["model"]
            and s["model"]["quantization"] == "q4"
        ),
        what="the restart on q4",
    )
    c.stop()


def test_a_switch_to_what_cannot_load_is_refused_before_the_model_is_touched(
    service: ServiceProcess, tiny_checkpoint, tmp_path: Path
) -> None:
    """Each kind of unusable checkpoint: refused (422, the reason) by the loader's own header
    and memory checks, while the running model stays loaded and the service healthy."""
    c = service.client
    loaded = wait_for(lambda: c.status()["model"], what="the preloaded model")
    good = tiny_checkpoint("q8")
    model = next(good.glob("model*.safetensors"))
    config = MoshiConfig.from_file(good / "config.json")
    truncated = linked_copy(good, tmp_path / "truncated", skip={model.name})
    (truncated / model.name).write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    other = linked_copy(good, tmp_path / "other-architecture", skip={"config.json"})
    replace(config, num_layers=config.num_layers + 1).write(other / "config.json")
    # A KV cache (keys and values at full context) twice this machine's memory.
    context = 2 * psutil.virtual_memory().total // (4 * config.num_layers * config.dim)
    huge = linked_copy(good, tmp_path / "too-big", skip={"config.json"})
    replace(config, context=context).write(huge / "config.json")
    codec_less = linked_copy(good, tmp_path / "no-codec", only={model.name, "config.json"})
    (tmp_path / "empty").mkdir()
    cases = {
        "/etc/passwd": "not a safetensors file",
        str(tmp_path / "empty"): "no Moshi model file here",
        str(truncated): "truncated",
        str(other): "weights do not match the architecture",
        str(huge): "GiB of which about",
        str(codec_less): "no Mimi codec file beside the model",
    }
    for target, reason in cases.items():
        with pytest.raises(ServiceRefusedError) as refused:
            c.switch(checkpoint=target)
        assert refused.value.status == 422 and reason in str(refused.value), target
        status = c.status()
        assert status["model"] == loaded, target  # the same model, not reloaded
        assert status["state"] == "idle" and status["error"] is None, target
    # And a good one still switches.
    c.switch(checkpoint=str(good))
    wait_for(lambda: (m := c.status()["model"]) and m["quantization"] == "q8", what="q8")


def linked_copy(
    source: Path,
    folder: Path,
    *,
    skip: AbstractSet[str] = frozenset(),
    only: set[str] | None = None,
) -> Path:
    """A checkpoint folder of links to `source`'s files (costs no disk)."""
    folder.mkdir()
    for f in source.iterdir():
        if f.name not in skip and (only is None or f.name in only):
            (folder / f.name).symlink_to(f)
    return folder


@pytest.mark.slow
def test_device_failure_is_reported_and_the_service_stays_up(tiny_checkpoint, tmp_path) -> None:
    svc = ServiceProcess(
        "--checkpoint", str(tiny_checkpoint("bf16")), "--input", str(tmp_path / "gone.wav")
    )
    try:
        c = svc.client
        wait_for(lambda: c.status()["model"], what="model")
        c.start()
        status = wait_for(lambda: (s := c.status())["state"] == "error" and s, what="error")
        assert "gone.wav" in status["error"]
        # Still serving, and a new attempt gets the same clear error rather than a hang.
        assert c.status()["state"] == "error"
        c.start()
        wait_for(lambda: c.status()["state"] == "error", what="error again")
    finally:
        svc.close()


@pytest.mark.slow
def test_model_failure_is_reported(tmp_path: Path, tiny_checkpoint) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_checkpoint("bf16").iterdir():
        (broken / f.name).symlink_to(f)
    model = next(broken.glob("model*.safetensors"))
    model.unlink()
    model.write_bytes(b"\x00" * 100)  # a truncated model file
    svc = ServiceProcess("--checkpoint", str(broken), "--input", str(SPEECH))
    try:
        status = wait_for(lambda: (s := svc.client.status())["state"] == "error" and s)
        assert model.name in status["error"]
        assert svc.proc.poll() is None
    finally:
        svc.close()


def test_one_instance_and_a_taken_port(
    service: ServiceProcess, warm_starter: WarmStarter | None
) -> None:
    def serve(port: int) -> tuple[int | None, str]:
        args = ["serve", "--port", str(port), "--no-preload"]
        code, output, _ = run_assistant(warm_starter, args, env=dict(os.environ), timeout=60)
        return code, output

    code, output = serve(0)
    assert code == 1
    assert "already running" in output and str(service.proc.pid) in output
    assert service.client.status()["state"] in ("idle", "loading")  # the first one unharmed

    service.close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = serve(port)
    assert code == 1 and f"port {port}" in output and "in use" in output


def test_ctl_without_a_service(ctl) -> None:
    result = ctl("status")
    assert result.returncode == 1
    assert "not running" in result.output and "assistant serve" in result.output


# --- security ------------------------------------------------------------------------------------
def test_listens_on_loopback_only(service: ServiceProcess) -> None:
    listening = [
        c.laddr
        for c in psutil.Process(service.proc.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and all(ipaddress.ip_address(a.ip).is_loopback for a in listening)
    # From any other address of this machine, nothing answers on that port.
    port = service.client.info.port
    others = [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback
    ]
    for address in others:
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(2)
            s.connect((address, port))


def test_api_refuses_callers_without_the_credential(service: ServiceProcess) -> None:
    url = service.client.info.url
    assert requests.get(url + "/api/status", timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert requests.get(url + "/api/status", headers=wrong, timeout=5).status_code == 401
    assert requests.post(url + "/api/start", headers=wrong, timeout=5).status_code == 401
    # The credential file is private to its user.
    from assistant.service.info import info_file

    assert info_file().stat().st_mode & 0o077 == 0
    # The page itself is public (it holds no secret) and loads nothing from elsewhere.
    page = requests.get(url + "/", timeout=5)
    assert (
        page.status_code == 200 and "default-src 'self'" in page.headers["Content-Security-Policy"]
    )
    assert "http" not in page.text.replace("http-equiv", "")


def test_api_rejects_malformed_and_foreign_requests(service: ServiceProcess) -> None:
    info = service.client.info
    auth = {"Authorization": f"Bearer {info.token}"}
    post = lambda path, **kw: requests.post(info.url + path, timeout=5, **kw)  # noqa: E731

    r = post("/api/mute", headers={**auth, "Content-Type": "application/json"}, data=b"{not json")
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    r = post("/api/mute", headers=auth, json={"muted": "yes"})
    assert r.status_code == 400 and "true or false" in r.json()["error"]
    r = post("/api/mute", headers=auth, json={"muted": True, "volume": 3})
    assert r.status_code == 400 and "unknown fields ['volume']" in r.json()["error"]
    r = post("/api/switch", headers=auth, json={"quant": "q3"})
    assert r.status_code == 400 and "unknown quantization" in r.json()["error"]
    r = post("/api/switch", headers=auth, json=[1, 2])
    assert r.status_code == 400
    r = post("/api/start", headers=auth, data=b"x" * 20_000)
    assert r.status_code == 413 and "body over" in r.json()["error"]
    assert post("/api/reboot", headers=auth).status_code == 404
    # DNS rebinding (a foreign Host) and cross-site requests (a foreign Origin) are refused.
    r = requests.get(info.url + "/api/status", headers={**auth, "Host": "evil.example"}, timeout=5)
    assert r.status_code == 403
    r = post("/api/stop", headers={**auth, "Origin": "https://evil.example"})
    assert r.status_code == 403
    # None of it harmed the service.
    assert service.client.status()["muted"] is False


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root to act as another user"
)
def test_another_user_cannot_read_the_token_or_call_the_api(service: ServiceProcess) -> None:
    """A real second user (nobody): the service file is out of reach and the API says 401."""
    from assistant.service.info import info_file

    probe = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    open({str(info_file())!r}).read(); print('read')\n"
        "except OSError: print('unreadable')\n"
        "try:\n"
        f"    urllib.request.urlopen({service.client.info.url + '/api/status'!r}, timeout=5)\n"
        "except urllib.error.HTTPError as e: print(e.code)\n"
    )
    result = subprocess.run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert result.stdout.split() == ["unreadable", "401"], result.stdout + result.stderr
