"""Shared fixtures: paths to the labelled dev pools and a loader that strips their labels."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO.parent / "shared" / "bench"
EXAMPLES = REPO / "examples" / "pools.jsonl"
CODE_EXAMPLES = REPO / "examples" / "code.jsonl"


def read_pools(name: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The first ``limit`` pools of a dev file, as `rerank score` input: labels stay out of sight."""
    pools = []
    with open(BENCH / f"{name}-dev.jsonl", encoding="utf-8") as f:
        for line in f:
            pool = json.loads(line)
            pool["candidates"] = [
                {"content": c.get("content"), "tool_calls": c.get("tool_calls")} for c in pool["candidates"]
            ]
            pools.append(pool)
            if limit and len(pools) >= limit:
                break
    return pools


@pytest.fixture(scope="session")
def bench_dir() -> Path:
    """The labelled dev pools beside the checkout."""
    if not BENCH.is_dir():
        pytest.fail(f"{BENCH} is missing: the tests need ../shared/bench beside the checkout")
    return BENCH
