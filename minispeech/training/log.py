"""`metrics.jsonl`: the run's log, one JSON record per line, beside the checkpoints.

Training records (step, loss, lr, grad_norm), validation metrics and events (a
non-finite loss with its utterance ids) are appended by rank 0. On resume the records of
steps after the checkpoint are dropped, so a resumed run's log equals an unbroken one's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from minispeech.core.checkpoint import atomic_write


class MetricsLog:
    """Append-only JSON lines (rank 0 only); non-finite numbers as strings."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        clean = {
            k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(clean) + "\n")

    def truncate_after(self, step: int) -> None:
        """On resume, drop the records of steps after the checkpoint."""
        if not self.enabled or not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        keep = [line for line in lines if _record_step(line) <= step]
        atomic_write(
            self.path, lambda f: f.write("".join(x + "\n" for x in keep).encode())
        )


def _record_step(line: str) -> float:
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return math.inf  # a half-written line from a kill
