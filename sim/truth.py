"""Ground truth: every injected event and fault, one JSON line each, in the alert vocabulary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from .timeparse import rfc3339


class TruthWriter:
    """Appends truth records to a JSON-lines file (or keeps them in memory when no path)."""

    def __init__(self, path: str | Path | None, tz: str = "Asia/Shanghai", creek: str = ""):
        self.tz = tz
        self.creek = creek
        self.records: list[dict[str, Any]] = []
        self._fh: IO[str] | None = None
        if path:
            self._fh = open(path, "a", encoding="utf-8")

    def record(self, kind: str, start_ts: float, end_ts: float | None, *, segment: str | None = None,
               node: str | None = None, outlet: str | None = None,
               params: dict[str, Any] | None = None, creek: str | None = None,
               event_id: str | None = None) -> dict[str, Any]:
        """Write one record now (it is flushed at once so a reader sees it as it happens)."""
        rec = {
            "kind": kind, "creek": creek or self.creek, "segment": segment, "node": node,
            "outlet": outlet, "start": rfc3339(start_ts, self.tz),
            "end": rfc3339(end_ts, self.tz) if end_ts is not None else None,
            "start_ts": round(start_ts, 3), "end_ts": round(end_ts, 3) if end_ts is not None else None,
            "params": params or {},
        }
        if event_id:
            rec["id"] = event_id
        self.records.append(rec)
        if self._fh:
            self._fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=False) + "\n")
            self._fh.flush()
        return rec

    def close(self) -> None:
        """Close the file (records stay in memory)."""
        if self._fh:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "TruthWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_truth(path: str | Path) -> list[dict[str, Any]]:
    """All records of a truth file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
