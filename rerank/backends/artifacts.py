"""The cache folder where backends keep what they derive from a model (built once, reused)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

CACHE_ENV = "RERANK_CACHE_DIR"
"""Environment variable naming the cache folder (default: ``$XDG_CACHE_HOME/rerank``, else ``~/.cache/rerank``)."""

logger = logging.getLogger("rerank")


def stay_offline() -> None:
    """Tell Hugging Face's libraries, before they load a model, never to reach for a hub: every
    model here is a local directory (the user may still override either variable)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def cache_dir() -> Path:
    """The folder for derived models: ``$RERANK_CACHE_DIR``, else ``$XDG_CACHE_HOME/rerank``, else ``~/.cache/rerank``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "rerank"


def model_fingerprint(model: Path) -> str:
    """A short name for this exact model directory: its name plus a hash of its path and files'
    sizes and times, so that a changed model gets a new artifact."""
    digest = hashlib.sha256(str(model.resolve()).encode())
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(model)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"{model.resolve().name}-{digest.hexdigest()[:12]}"


def artifact(kind: str, model: Path, build: Callable[[Path], None], *, what: str, version: str = "") -> Path:
    """The folder ``<cache>/<kind>/<model fingerprint>[-<version>]``, built by ``build(folder)`` on first use.

    ``version`` names the format ``build`` writes: a new one is built beside artifacts of older formats.

    ``build`` writes into a temporary folder that is renamed into place when complete, so an
    interrupted or concurrent build never leaves a half-written artifact behind.
    """
    target = cache_dir() / kind / (model_fingerprint(model) + (f"-{version}" if version else ""))
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.warning("rerank: %s from %s into %s (once; `rerank prepare --embedding-backend %s` does this "
                   "ahead of time)", what, model, target, kind)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(work)
        try:
            work.rename(target)
        except OSError:
            if not target.is_dir():  # another process finished first: keep its artifact
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
