"""Progress of long command-line work: a bar on a terminal, plain lines otherwise.

A bar (tqdm) is drawn only when the stream is a terminal; in a log file, a pipe or CI the same
calls print a plain line now and then (``report: 120/400 nodes-days (30%)``) and one at the
end, so logs stay readable and carry no carriage returns. Usage::

    with progress(total=len(rows), desc="backfill", unit="rows") as bar:
        for chunk in chunks:
            ...
            bar.update(len(chunk))

    for item in track(items, desc="replay", unit="readings"):
        ...
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Iterable, Iterator, TypeVar

__all__ = ["Progress", "progress", "track", "is_terminal"]

T = TypeVar("T")

# A plain line at most this often, so a long job logs a heartbeat without flooding the log.
PLAIN_EVERY_S = 5.0


def is_terminal(stream: IO[str]) -> bool:
    """True when ``stream`` is attached to a terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """One job's progress; ``update(n)`` as work is done, ``close()`` (or ``with``) at the end."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it",
                 stream: IO[str] | None = None, enabled: bool = True,
                 plain_every_s: float = PLAIN_EVERY_S):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.plain_every_s = plain_every_s
        self.n = 0
        self._t0 = self._last = time.monotonic()
        self._closed = False
        self._bar: Any = None
        if enabled and is_terminal(self.stream):
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream,
                             dynamic_ncols=True, leave=True)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.monotonic() - self._last >= self.plain_every_s:
            self._plain()

    def set_total(self, total: int) -> None:
        """Fix the total once it is known."""
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def close(self) -> None:
        """Finish: close the bar, or print the final plain line."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self._plain(final=True)

    def _plain(self, final: bool = False) -> None:
        self._last = time.monotonic()
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        tail = f" done in {self._last - self._t0:.1f} s" if final else ""
        print(f"{self.desc}: {done} {self.unit}{pct}{tail}", file=self.stream, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(total: int | None = None, desc: str = "", unit: str = "it",
             stream: IO[str] | None = None, enabled: bool = True) -> Progress:
    """A :class:`Progress` (use it as a context manager)."""
    return Progress(total, desc, unit, stream, enabled)


def track(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it",
          stream: IO[str] | None = None, enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while counting them (total from ``len()`` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit, stream, enabled) as bar:
        for item in items:
            yield item
            bar.update(1)
