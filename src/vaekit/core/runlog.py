"""What a training run writes as it goes: ``metrics.csv`` (one row per round, rewritten atomically) and, when the
optional tensorboard package is installed, the same scalars as TensorBoard events."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from vaekit.files import atomic_write_text


def write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    """The rows as CSV (header = the first row's keys), replacing ``path`` atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


class TensorBoardLog:
    """Scalars of each round's row to ``folder`` (keyed by its ``epoch``); does nothing without tensorboard."""

    def __init__(self, folder: Path) -> None:
        self.writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder))
        except ImportError:
            pass

    def add(self, row: dict[str, float]) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, int(row["epoch"]))
        self.writer.flush()
