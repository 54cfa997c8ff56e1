"""The non-finite step guard, and the one error a training run raises when it cannot continue."""

from __future__ import annotations

import logging

from encoder.errors import EcgLlmError

log = logging.getLogger(__name__)


class TrainingError(EcgLlmError):
    """Training cannot continue (e.g. the loss or the gradients stayed NaN/inf)."""


class NonFiniteGuard:
    """Counts consecutive skipped (non-finite) steps and stops the run after ``max_bad_steps`` in a row.

    ``advice`` ends the error message: what to change, and how to resume. ``consecutive`` and ``total`` are saved
    with every checkpoint, so a resumed run counts on."""

    def __init__(self, max_bad_steps: int, advice: str = "") -> None:
        self.max_bad_steps = max_bad_steps
        self.advice = advice
        self.consecutive = 0
        self.total = 0

    def record(self, applied: bool, step: int) -> None:
        """Note whether ``step`` was applied; raise :class:`TrainingError` after too many skips in a row."""
        if applied:
            self.consecutive = 0
            return
        self.consecutive += 1
        self.total += 1
        log.warning(
            "step %d: non-finite loss or gradient, step skipped (%d in a row)", step, self.consecutive
        )
        if self.consecutive >= self.max_bad_steps:
            raise TrainingError(
                f"The loss or gradients were NaN/inf for {self.consecutive} consecutive steps (last: step {step}); "
                f"training stopped, parameters were left unchanged. {self.advice}".rstrip()
            )
