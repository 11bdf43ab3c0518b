"""Creek time for services that follow a stream: the newest reading's time, advanced by wall time.

A live creek's readings carry the wall clock; an accelerated simulation or a drained backlog
carries its own. Deadlines (silence, confirmation, auto-resolve) must run on the stream's clock,
so a service keeps the newest timestamp it has seen and adds the wall time elapsed since.
"""

from __future__ import annotations

import time


class DataClock:
    """The newest data timestamp seen, advanced by the wall time since it was seen."""

    def __init__(self, start: float | None = None):
        self.data_now = start
        self.wall_at_data = time.time()

    def now(self) -> float:
        """Creek time now (the wall clock until any data was seen)."""
        wall = time.time()
        if self.data_now is None:
            return wall
        return self.data_now + (wall - self.wall_at_data)

    def saw(self, ts: float) -> None:
        """A reading stamped ``ts`` arrived; the clock never goes back."""
        if self.data_now is None or ts > self.data_now:
            self.data_now, self.wall_at_data = ts, time.time()
