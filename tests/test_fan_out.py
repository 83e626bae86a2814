"""The fan-out loop starts no thread for a lone request that nothing could cut short (a native-n call)."""

from __future__ import annotations

import threading
import time

import pytest
from openai import OpenAI

import rerank
from rerank.generate import STOP, fan_out
from rerank.testing import serve


def _thread_name(job: object) -> str:
    return threading.current_thread().name


def _collect(seen: list[tuple[object, object, object]], follow_ups: dict[object, list[object]] | None = None):
    def done(job: object, result: object, error: object) -> list[object]:
        seen.append((job, result, error))
        return (follow_ups or {}).get(job, [])
    return done


def test_a_lone_job_runs_on_the_calling_thread_and_its_follow_ups_on_workers():
    seen: list[tuple[object, object, object]] = []
    left = fan_out(["first"], _thread_name, _collect(seen, {"first": ["top-up 1", "top-up 2"]}), concurrency=4)
    assert left == []
    assert seen[0] == ("first", threading.current_thread().name, None)
    assert sorted(job for job, _, _ in seen[1:]) == ["top-up 1", "top-up 2"]
    assert all(name.startswith("rerank-fan-out") for _, name, _ in seen[1:])


def test_several_jobs_or_a_deadline_that_can_cut_a_lone_one_short_run_on_workers():
    seen: list[tuple[object, object, object]] = []
    fan_out(["a", "b"], _thread_name, _collect(seen), concurrency=2)
    assert all(name.startswith("rerank-fan-out") for _, name, _ in seen)
    seen.clear()
    # Candidates already in hand (a later adaptive round): the deadline must be able to stop waiting.
    left = fan_out(["slow"], lambda job: time.sleep(2), _collect(seen), concurrency=1, deadline=0.2,
                   have=lambda: True)
    assert left == ["slow"] and seen == []


def test_a_lone_jobs_error_goes_to_done_and_ctrl_c_is_raised():
    seen: list[tuple[object, object, object]] = []

    def fail(job: object) -> object:
        raise ValueError(f"{job} failed")

    assert fan_out(["x"], fail, _collect(seen), concurrency=1) == []
    assert seen[0][0] == "x" and isinstance(seen[0][2], ValueError) and str(seen[0][2]) == "x failed"

    def interrupted(job: object) -> object:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fan_out(["x"], interrupted, _collect([]), concurrency=1)
    assert fan_out(["x"], _thread_name, lambda *_: STOP, concurrency=1) == []


def test_a_wrapped_native_n_call_starts_no_fan_out_thread():
    """Through the SDK and HTTP: while the one upstream request of an n=4 call waits on the server,
    no rerank worker thread exists."""
    before = set(threading.enumerate())  # workers of other tests may still be finishing
    names: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            names.update(t.name for t in set(threading.enumerate()) - before)
            time.sleep(0.01)

    with serve(candidates=["Paris.", "Paris is the capital.", "Lyon.", "It is Paris."], n_mode="honour",
               latency=0.5) as server:
        client = rerank.wrap(OpenAI(base_url=server.base_url, api_key="test", max_retries=0), n=4,
                             scorers=["bm25"])
        watcher = threading.Thread(target=watch, name="watcher")
        watcher.start()
        try:
            reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Capital of France?"}])
        finally:
            stop.set()
            watcher.join()
        assert len(server.requests) == 1 and server.requests[0].body["n"] == 4
    assert reply.choices[0].message.content in {"Paris.", "Paris is the capital.", "Lyon.", "It is Paris."}
    assert not [name for name in names if name.startswith("rerank-fan-out")], names
