"""Launcher for `llama_cpp.server` used by `EmbeddedServer` (run by file path, not imported).

It adds one option, `--no-extra-bufts`, which turns off llama.cpp's extra weight buffer types
(runtime weight repacking, including the AMX kernels) before the model loads. Why: on this
project's VMs the CPU advertises AMX, llama-cpp-python 0.3.36 built with GGML_NATIVE picks the
AMX path for Q4 weights, and `ggml_backend_amx_mul_mat` segfaults on the first decode.
`llama_cpp.Llama` does not expose `use_extra_bufts`, so the default params are wrapped here.
"""

from __future__ import annotations

import runpy
import sys
from typing import Any

FLAG = "--no-extra-bufts"


def _disable_extra_bufts() -> None:
    from llama_cpp import llama_cpp as lib

    original = lib.llama_model_default_params

    def without_extra_bufts() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = without_extra_bufts


if __name__ == "__main__":
    if FLAG in sys.argv:
        sys.argv.remove(FLAG)
        _disable_extra_bufts()
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
