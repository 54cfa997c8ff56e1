"""One metrics log per run: ``metrics.csv`` plus the same scalars in TensorBoard, written by the main process."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.csv"


class MetricsLog:
    """``<out>/metrics.csv`` with the columns ``fields`` and ``<out>/tensorboard``. On resume both are cut back to
    ``resume_step``, so the replayed steps are not logged twice. A disabled log (other processes) writes nothing."""

    def __init__(self, out: Path, fields: Sequence[str], resume_step: int, enabled: bool) -> None:
        self.path = Path(out) / METRICS_FILE
        self.fields = list(fields)
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        rows = []
        if resume_step > 0 and self.path.is_file():
            with open(self.path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, self.fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(
                str(Path(out) / "tensorboard"), purge_step=resume_step + 1 if resume_step else None
            )
        except ImportError:  # tensorboard is optional at run time
            pass

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (missing columns stay empty); numeric finite values also go to TensorBoard."""
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(
                {k: row.get(k, "") for k in self.fields}
            )
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch", "split") and isinstance(v, int | float) and math.isfinite(v):
                    self.tb.add_scalar(f"{row.get('split', 'train')}/{k}", v, row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
