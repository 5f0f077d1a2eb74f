"""Launcher for `llama_cpp.server` used by `EmbeddedServer` (run by file path, not imported).

It adds one option, `--extra-bufts {auto,on,off}`, for llama.cpp's extra weight buffer types
(runtime weight repacking into CPU-friendly layouts, and the AMX kernels). Why: the repacked
layouts make generation about 20% faster here (bench/llm_speed.py), but on this project's VMs
the CPU advertises AMX, and a llama-cpp-python built with AMX kernels (GGML_NATIVE on such a
CPU) segfaults in `ggml_backend_amx_mul_mat` on the first decode. `auto` (the default) keeps
them on unless the loaded library was built with AMX; scripts/setup.sh builds it without.
`llama_cpp.Llama` does not expose `use_extra_bufts`, so the default params are wrapped here.
"""

from __future__ import annotations

import runpy
import sys
from typing import Any

FLAG = "--extra-bufts"
CHOICES = ("auto", "on", "off")


def built_with_amx() -> bool:
    from llama_cpp import llama_cpp as lib

    info = lib.llama_print_system_info()
    text = info.decode() if isinstance(info, bytes) else str(info)
    return any(f"{name} = 1" in text for name in ("AMX_INT8", "AMX_BF16", "AMX_TILE"))


def _disable_extra_bufts() -> None:
    from llama_cpp import llama_cpp as lib

    original = lib.llama_model_default_params

    def without_extra_bufts() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = without_extra_bufts


def exit_with_parent(poll_s: float = 1.0) -> None:
    """Exit when the process that started this server is gone. `EmbeddedServer.__exit__`
    stops the server, but a parent killed by a signal Python does not handle (SIGTERM, SIGKILL)
    never runs it; the orphan kept a 3 GB model in memory and its threads spinning."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def pop_choice(argv: list[str]) -> str:
    """Remove `--extra-bufts X` from argv and return X (default auto)."""
    if FLAG not in argv:
        return "auto"
    i = argv.index(FLAG)
    if i + 1 >= len(argv) or argv[i + 1] not in CHOICES:
        raise SystemExit(f"{FLAG} needs one of {', '.join(CHOICES)}")
    choice = argv[i + 1]
    del argv[i : i + 2]
    return choice


if __name__ == "__main__":
    exit_with_parent()
    choice = pop_choice(sys.argv)
    if choice == "off" or (choice == "auto" and built_with_amx()):
        if choice == "auto":
            print("kgenrich: llama.cpp was built with AMX kernels, which crash on some VMs; "
                  "weight repacking is off (rebuild with scripts/setup.sh for speed)",
                  file=sys.stderr, flush=True)
        _disable_extra_bufts()
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
