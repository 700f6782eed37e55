"""`assistant serve` (the background service) and `assistant ctl ...` (driving it)."""

from __future__ import annotations

import json
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..audio.profiles import DEFAULT_PROFILE
from ..console import console
from ..conversation.chat import ChatSettings
from ..conversation.lag import DEFAULT_MAX_DELAY_MS
from ..errors import UsageError
from ..service.info import DEFAULT_PORT
from .options import (
    DELAY_RANGE,
    MAX_UPDATES,
    CheckpointTarget,
    InputDevice,
    Latency,
    ListenFirst,
    MimiFile,
    NoAec,
    OutputDevice,
    Quant,
    TextTokenizerFile,
    Voice,
    checkpoint_spec,
    in_range,
    parse_device,
)

if TYPE_CHECKING:
    from ..service.client import ServiceClient

ctl = typer.Typer(
    help="Drive the running service: status, start, stop, mute, switch, watch, open, quit.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(ctl, name="ctl")


def serve(
    voice: Voice = "moshiko",
    quant: Quant = None,
    checkpoint: CheckpointTarget = None,
    mimi_file: MimiFile = None,
    text_tokenizer: TextTokenizerFile = None,
    input_device: InputDevice = None,
    output_device: OutputDevice = None,
    no_aec: NoAec = False,
    listen_first: ListenFirst = False,
    latency: Latency = DEFAULT_PROFILE,
    input_wav: Annotated[
        Path | None,
        typer.Option("--input", help="Use this audio file as the microphone (real-time pace)."),
    ] = None,
    max_delay_ms: Annotated[
        float, typer.Option(help="Drop frames beyond this delay.", callback=DELAY_RANGE)
    ] = DEFAULT_MAX_DELAY_MS,
    port: Annotated[
        int,
        typer.Option(
            help="Loopback port for the API and dashboard (0: any free one).",
            callback=in_range(0, 65535),
        ),
    ] = DEFAULT_PORT,
    no_preload: Annotated[
        bool, typer.Option("--no-preload", help="Load the model at the first start, not now.")
    ] = False,
    open_dashboard: Annotated[
        bool, typer.Option("--open", help="Open the web dashboard in the browser.")
    ] = False,
    skip_memory_check: Annotated[
        bool, typer.Option("--skip-memory-check", help="Load even if it looks too big.")
    ] = False,
) -> None:
    """Run the assistant as a background service (Ctrl-C or `assistant ctl quit` to stop)."""
    from ..service.controller import Controller
    from ..service.runtime import ServiceInfo
    from ..service.runtime import serve as run

    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {port}")
    settings = ChatSettings(
        checkpoint=checkpoint_spec(
            checkpoint, voice=voice, quant=quant, mimi_file=mimi_file, text_tokenizer=text_tokenizer
        ),
        input_device=parse_device(input_device),
        output_device=parse_device(output_device),
        input_file=input_wav,
        realtime_files=True,
        echo_cancellation=not no_aec,
        listen_first=listen_first,
        latency=latency,
        max_delay_ms=max_delay_ms,
        check_memory=not skip_memory_check,
        session_kind="service",
    )

    def ready(info: ServiceInfo) -> None:
        console.print(f"Assistant service on {info.url} (pid {info.pid}); loading the model ...")
        console.print(f"Dashboard: {info.dashboard_url}", soft_wrap=True)
        console.print("Drive it with `assistant ctl start|stop|mute|switch|status`.")
        if open_dashboard:
            webbrowser.open(info.dashboard_url)

    run(Controller(settings), port, on_ready=ready, preload=not no_preload)
    console.print("Service stopped.")


# --- ctl -----------------------------------------------------------------------------------------
def _client() -> ServiceClient:
    from ..service.client import ServiceClient

    return ServiceClient.connect()


@ctl.command("status")
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the service's state, model and last error."""
    s = _client().status()
    if as_json:
        console.print_json(json.dumps(s))
        return
    _print_status(s)


@ctl.command("start")
def start() -> None:
    """Start a conversation."""
    _print_status(_client().start())


@ctl.command("stop")
def stop() -> None:
    """End the conversation (the model stays loaded)."""
    _print_status(_client().stop())


@ctl.command("mute")
def mute() -> None:
    """Mute the microphone (Moshi hears silence)."""
    _print_status(_client().mute(True))


@ctl.command("unmute")
def unmute() -> None:
    """Unmute the microphone."""
    _print_status(_client().mute(False))


@ctl.command("switch")
def switch(
    voice: Annotated[str | None, typer.Option(help="moshiko or moshika.")] = None,
    quant: Annotated[str | None, typer.Option("--quant", "-q", help="q4, q8 or bf16.")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="A checkpoint folder or file.")] = None,
) -> None:
    """Load another voice or quantization (a running conversation restarts on it)."""
    if not (voice or quant or checkpoint):
        raise UsageError("give --voice, --quant or --checkpoint")
    _print_status(_client().switch(voice, quant, checkpoint))


@ctl.command("watch")
def watch(
    count: Annotated[
        int | None,
        typer.Option(help="Stop after this many updates.", callback=in_range(1, MAX_UPDATES)),
    ] = None,
) -> None:
    """Follow the live stats (Ctrl-C to stop)."""
    for n, update in enumerate(_client().stream(), start=1):
        console.print(_one_line(update), soft_wrap=True)
        if count is not None and n >= count:
            break


@ctl.command("open")
def open_dashboard() -> None:
    """Open the web dashboard in the browser."""
    url = _client().info.dashboard_url
    console.print(f"Opening {url}", soft_wrap=True)
    webbrowser.open(url)


@ctl.command("quit")
def quit_service() -> None:
    """Stop the conversation and the service."""
    client = _client()
    client.quit()
    if client.wait_stopped():
        console.print("The service stopped.")
    else:
        console.print(f"The service is stopping (pid {client.info.pid} is still running).")


def _print_status(s: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("state", s["state"] + (" (microphone muted)" if s["muted"] else ""))
    model = s.get("model")
    table.add_row("model", f"{model['label']}, {model['quantization']}" if model else "not loaded")
    where = f" ({s['checkpoint']})" if s["checkpoint"] else ""
    table.add_row("choice", f"{s['voice']} {s['quant']}{where}")
    if s.get("session"):
        table.add_row("last session", s["session"])
    if s.get("error"):
        table.add_row("error", f"[red]{s['error']}[/]")
    console.print(table)


def _one_line(update: dict[str, Any]) -> str:
    s, m = update["status"], update.get("metrics")
    if not m:
        return f"{s['state']}: no conversation yet"
    st = m["stages"]
    return (
        f"{s['state']}{' (muted)' if s['muted'] else ''} · step p50 "
        f"{st['step']['window']['p50']:.1f} ms p95 {st['step']['window']['p95']:.1f} · delay p95 "
        f"{st['delay']['window']['p95']:.0f} ms · RTF {m['real_time_factor']:.2f} · frames "
        f"{m['frames']['finished']} · dropped {m['frames']['dropped']}"
    )
