"""Progress on stderr for long runs: count, rate and ETA, never on stdout."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

MIN_TIMED = 3
"""Items finished after the first before an ETA is shown: the first one carries the start-up
(loading models, encoding ahead), so a rate taken from it alone predicts minutes for seconds."""


class Progress:
    """Reports ``done/total``, rate and ETA on ``stream``.

    On a terminal the line is redrawn at most a few times a second; elsewhere (logs, CI) a line
    is written every ``log_every`` seconds and once at the end, never the same count twice. The
    ETA comes from the items finished after the first, once :data:`MIN_TIMED` of them are.
    """

    def __init__(
        self, label: str, *, total: int | None = None, stream: TextIO | None = None,
        enabled: bool = True, log_every: float = 10.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.failed = 0
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._tty = self._stream.isatty()
        self._interval = 0.2 if self._tty else log_every
        self._clock = clock
        self._start = clock()
        self._first: float | None = None
        self._last: float | None = None
        self._written: int | None = None

    def advance(self, *, failed: bool = False) -> None:
        """Count one finished item (``failed`` counts it as an error too)."""
        self.done += 1
        self.failed += failed
        now = self._clock()
        if self._first is None:
            self._first = now
        if self._last is None or now - self._last >= self._interval:
            self._last = now
            self._write(final=False)

    def close(self) -> None:
        """Write the final line (on a log, only if the last one written is not already it)."""
        if self._tty or self._written != self.done:
            self._write(final=True)

    def eta(self) -> float | None:
        """Seconds left, from the rate after the first item; None until that rate means something."""
        timed = self.done - 1
        if not self.total or self._first is None or timed < MIN_TIMED or self.done >= self.total:
            return None
        seconds = self._clock() - self._first
        return (self.total - self.done) * seconds / timed if seconds > 0 else None

    def status(self) -> str:
        """The current line, e.g. ``score: 120/400 (30%), 2 failed, 35.2/s, ETA 0:00:08``."""
        elapsed = max(self._clock() - self._start, 1e-9)
        parts = [f"{self.label}: {self.done}" + (f"/{self.total}" if self.total else "")]
        if self.total:
            parts[0] += f" ({100 * self.done // self.total}%)"
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{self.done / elapsed:.1f}/s")
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}")
        else:
            parts.append(f"{elapsed:.1f}s")
        return ", ".join(parts)

    def _write(self, *, final: bool) -> None:
        if not self._enabled:
            return
        self._written = self.done
        if self._tty:
            end = "\n" if final else ""
            self._stream.write(f"\r\x1b[K{self.status()}{end}")
        else:
            self._stream.write(self.status() + "\n")
        self._stream.flush()
