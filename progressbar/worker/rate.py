"""Rate and ETA of a task's progress, smoothed as tqdm smooths them."""

from __future__ import annotations


class EMA:
    """Exponential moving average, debiased for its first samples (as tqdm's)."""

    def __init__(self, smoothing: float = 0.3) -> None:
        self.alpha = smoothing
        self.value = 0.0
        self.calls = 0

    def add(self, x: float) -> None:
        self.value = self.alpha * x + (1 - self.alpha) * self.value
        self.calls += 1

    def get(self) -> float:
        if not self.calls:
            return 0.0
        return self.value / (1 - (1 - self.alpha) ** self.calls)


class Rate:
    """Units per second from (count, time) samples, and the time left.

    A sample is taken whenever the count moved since the last one; units and
    seconds are averaged apart (as tqdm does), so an uneven step does not jerk
    the rate. No ETA before `eta_min_samples` samples and `eta_min_elapsed`
    seconds since `started`: early guesses mislead more than they help.
    """

    def __init__(
        self,
        started: float,
        smoothing: float = 0.3,
        eta_min_samples: int = 2,
        eta_min_elapsed: float = 1.0,
    ) -> None:
        self.started = started
        self.eta_min_samples = eta_min_samples
        self.eta_min_elapsed = eta_min_elapsed
        self._dn = EMA(smoothing)
        self._dt = EMA(smoothing)
        self._n: float = 0
        self._t = started

    def sample(self, current: float, now: float) -> None:
        dn = current - self._n
        dt = now - self._t
        if dn and dt > 0:
            self._dn.add(dn)
            self._dt.add(dt)
            self._n = current
            self._t = now

    def per_second(self) -> float | None:
        """Smoothed units per second, or None before the first sample."""
        dt = self._dt.get()
        return self._dn.get() / dt if dt > 0 else None

    def eta(self, current: float, total: float | None, now: float) -> float | None:
        """Seconds left, once there is a total and enough samples to mean something."""
        rate = self.per_second()
        if (
            total is None
            or not rate
            or rate < 0
            or self._dt.calls < self.eta_min_samples
            or now - self.started < self.eta_min_elapsed
        ):
            return None
        return max(0.0, (total - current) / rate)
