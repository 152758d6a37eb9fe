"""Retry delays: exponential backoff with jitter and a cap (1 s, 2 s, 4 s, 8 s ... by default)."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0  # seconds before the 2nd attempt
    factor: float = 2.0  # growth per attempt
    cap: float = 3600.0  # longest delay, seconds
    jitter: float = 0.1  # +/- this fraction of the delay, so retries of a burst spread out

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("backoff base and cap must be >= 0")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be between 0 and 1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        exponent = max(attempt - 1, 0)
        # Stop multiplying once past the cap: factor ** 1000 would overflow a float.
        raw = self.base
        for _ in range(exponent):
            raw *= self.factor
            if raw >= self.cap:
                break
        delay = min(raw, self.cap)
        if self.jitter:
            spread = delay * self.jitter
            delay += (rng or random).uniform(-spread, spread)
        return max(0.0, min(delay, self.cap))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Backoff:
        return cls(**data) if data else cls()
