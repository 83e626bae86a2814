"""Progress on stderr for long runs: count, rate and ETA, never on stdout."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Reports ``done/total``, rate and ETA on ``stream``.

    On a terminal the line is redrawn at most a few times a second; elsewhere (logs, CI) a line
    is written every ``log_every`` seconds and once at the end.
    """

    def __init__(
        self, label: str, *, total: int | None = None, stream: TextIO | None = None,
        enabled: bool = True, log_every: float = 10.0,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.failed = 0
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._tty = self._stream.isatty()
        self._interval = 0.2 if self._tty else log_every
        self._start = time.monotonic()
        self._last = 0.0

    def advance(self, *, failed: bool = False) -> None:
        """Count one finished item (``failed`` counts it as an error too)."""
        self.done += 1
        self.failed += failed
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._write(final=False)

    def close(self) -> None:
        """Write the final line."""
        self._write(final=True)

    def status(self) -> str:
        """The current line, e.g. ``score: 120/400 (30%), 2 failed, 35.2/s, ETA 0:00:08``."""
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.label}: {self.done}" + (f"/{self.total}" if self.total else "")]
        if self.total:
            parts[0] += f" ({100 * self.done // self.total}%)"
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{rate:.1f}/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {time.strftime('%H:%M:%S', time.gmtime((self.total - self.done) / rate))}")
        else:
            parts.append(f"{elapsed:.1f}s")
        return ", ".join(parts)

    def _write(self, *, final: bool) -> None:
        if not self._enabled:
            return
        if self._tty:
            end = "\n" if final else ""
            self._stream.write(f"\r\x1b[K{self.status()}{end}")
        else:
            self._stream.write(self.status() + "\n")
        self._stream.flush()
