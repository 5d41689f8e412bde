"""The example plugin (examples/sma-cross-plugin) "installed" for a subprocess without building it:
its source directory and a minimal ``.dist-info`` declaring its entry points go on PYTHONPATH, which
is all importlib.metadata needs to find them."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SRC = ROOT / "examples" / "sma-cross-plugin" / "src"


def fake_install(site: Path, entry_points: dict[str, str], *, dist: str = "tradebot_sma_cross") -> Path:
    """Writes ``<site>/<dist>-0.1.0.dist-info`` declaring ``entry_points`` (name -> "module:attr")
    in the group ``tradebot.strategies``; returns ``site``."""
    info = site / f"{dist}-0.1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = ["[tradebot.strategies]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


def plugin_env(site: Path) -> dict[str, str]:
    """Environment for a ``python -m tradebot`` subprocess that sees the plugin."""
    path = [str(site), str(EXAMPLE_SRC), str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
