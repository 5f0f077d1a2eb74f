"""Headless Chromium (Debian's `chromium`) rendering a local HTML file to a PNG screenshot, with
every network feature it would otherwise reach for turned off; and how much a PNG shows."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# Without the background-networking flags Chromium keeps dialling Google's hosts, which a closed
# network refuses many times a second; --no-sandbox because tests may run as root.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def chromium_binary() -> str | None:
    """`chromium` (Debian) or `chromium-browser` on PATH, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(binary: str, page: Path, png: Path, *, width: int, height: int,
               timeout_s: float = 120) -> Path:
    """Render ``page`` at ``width`` x ``height`` CSS pixels into ``png``; raises
    ``RuntimeError`` with Chromium's output when it writes no file."""
    with tempfile.TemporaryDirectory(prefix="kgenrich-chromium-") as profile:
        done = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
             f"--window-size={width},{height}", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout_s, check=False)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {done.returncode}): "
                           f"{done.stderr[-2000:]}")
    return png


@dataclass(frozen=True)
class PixelStats:
    """What a screenshot shows: distinct colours and the share of pixels that are not white."""

    colours: int
    non_white: float


def pixel_stats(png: Path) -> PixelStats:
    """Colour counts of a PNG, decoded with Pillow (which matplotlib, a dependency, brings)."""
    with Image.open(png) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint32).reshape(-1, 3)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    non_white = float((rgb.min(axis=1) < 245).mean()) if len(rgb) else 0.0
    return PixelStats(colours=len(np.unique(packed)), non_white=non_white)
