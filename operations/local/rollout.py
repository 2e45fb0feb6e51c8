"""Rolling out to a fleet in batches: the plan, the failure budget, the gate and the outcome.

Pure logic, no pyinfra state, so it is unit-tested directly. ``deploys/app_deploy.py`` builds
one :class:`Rollout` per run from the run's hosts (inventory order) and the ``rollout_*`` data
keys; every host's operations read and write that one object while pyinfra executes them (its
hosts run as greenlets of one process, so a lock keeps the records whole).

Batch sizes follow Ansible's ``serial``: each entry is the size of the next batch, a count or a
percentage of the run's hosts (rounded up, at least one host); the last entry repeats until
every host has a batch. ``[1, "25%", "100%"]`` on 10 hosts gives batches of 1, 3 and 6.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

BatchSize = int | str
PERCENT = re.compile(r"([1-9][0-9]?|100)%")
ON_FAILURE = ("stop", "rollback")


class RolloutError(ValueError):
    """Bad rollout data: the message is the one line the operator sees."""


def parse_batches(value: Any) -> tuple[BatchSize, ...]:
    """Check ``rollout_batches``: None (one batch: every host at once) or a non-empty list of
    positive counts and ``"N%"`` strings (1-100)."""
    if value is None:
        return ("100%",)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise RolloutError(
            f"rollout_batches: expected a list like [1, '25%', '100%'], got {value!r}"
        )
    sizes: list[BatchSize] = []
    for item in value:
        if isinstance(item, bool) or not (
            (isinstance(item, int) and item >= 1)
            or (isinstance(item, str) and PERCENT.fullmatch(item))
        ):
            raise RolloutError(
                f"rollout_batches: {item!r} is not a host count (1 or more) or a percentage ('25%')"
            )
        sizes.append(item)
    return tuple(sizes)


def parse_percent(key: str, value: Any) -> float:
    """A percentage from 0 to 100 (``rollout_max_fail_percent``, ``rollout_max_error_rate``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise RolloutError(f"{key}: expected a number from 0 to 100, got {value!r}")
    return float(value)


def parse_on_failure(value: Any) -> str:
    """``rollout_on_failure``: "stop" (updated hosts keep the release) or "rollback"."""
    if value not in ON_FAILURE:
        raise RolloutError(f"rollout_on_failure: expected 'stop' or 'rollback', got {value!r}")
    return value


def batch_size(size: BatchSize, total: int) -> int:
    """Hosts in a batch of ``size`` out of ``total`` (a percentage rounds up, at least 1)."""
    if isinstance(size, int):
        return size
    return max(1, math.ceil(total * int(size[:-1]) / 100))


def plan_batches(hosts: Sequence[str], sizes: Sequence[BatchSize]) -> tuple[tuple[str, ...], ...]:
    """Split ``hosts`` (in the order given) into batches of ``sizes``; the last size repeats."""
    batches: list[tuple[str, ...]] = []
    start = 0
    while start < len(hosts):
        size = batch_size(sizes[min(len(batches), len(sizes) - 1)], len(hosts))
        batches.append(tuple(hosts[start : start + size]))
        start += size
    return tuple(batches)


def over_budget(failed: int, total: int, max_fail_percent: float) -> bool:
    """More hosts failed than ``max_fail_percent`` of ``total`` allows."""
    return failed * 100 > max_fail_percent * total


@dataclass(frozen=True)
class Watch:
    """What a host showed during a batch's soak: requests nginx answered for the app, how many
    of them were 5xx, and how many health probes failed."""

    requests: int
    errors: int
    probes: int
    failed_probes: int

    @property
    def error_rate(self) -> float:
        """5xx answers in percent of the answered requests (0 with no requests)."""
        return 100.0 * self.errors / self.requests if self.requests else 0.0


def gate_verdict(watch: Watch, max_error_rate: float) -> str | None:
    """Why a host fails its batch's health gate, or None when it passes."""
    if watch.failed_probes:
        return f"{watch.failed_probes} of {watch.probes} health checks failed"
    if watch.error_rate > max_error_rate:
        return (
            f"{watch.errors} of {watch.requests} requests answered 5xx "
            f"({watch.error_rate:.1f}% > rollout_max_error_rate {max_error_rate:g}%)"
        )
    return None


@dataclass
class HostOutcome:
    """One host's line in the fleet summary."""

    host: str
    batch: int
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: str = "not started"  # updated | failed | rolled back | not started
    seconds: float = 0.0


@dataclass
class Rollout:
    """One run's rollout: the batches, the budget, and what happened to each host."""

    batches: tuple[tuple[str, ...], ...]
    max_fail_percent: float = 0.0
    max_error_rate: float = 0.0
    soak_seconds: float = 0.0
    on_failure: str = "stop"
    stopped: str | None = None  # the one line saying which batch and host stopped it, and why
    stopper: str | None = None  # the host whose gate stopped it (None: the failure budget)
    outcomes: dict[str, HostOutcome] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    begun: set[int] = field(default_factory=set)  # the batches that started
    announced: bool = False  # "started" was posted (once per run)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        for index, batch in enumerate(self.batches):
            for name in batch:
                self.outcomes[name] = HostOutcome(name, index + 1)

    @property
    def hosts(self) -> list[str]:
        """Every host of the run, in rollout order."""
        return [name for batch in self.batches for name in batch]

    def batch_of(self, host: str) -> int:
        """The 0-based index of ``host``'s batch."""
        return self.outcomes[host].batch - 1

    def may_start(self, index: int, failed: Collection[str]) -> bool:
        """Whether batch ``index`` may start, given the run's failed hosts so far; the first
        refusal stops the rollout and says why."""
        with self._lock:
            if self.stopped is None and index > 0:
                done = [h for batch in self.batches[:index] for h in batch]
                down = [h for h in done if h in failed]
                if down and over_budget(len(down), len(self.hosts), self.max_fail_percent):
                    self.stopped = (
                        f"rollout stopped after batch {index}: {', '.join(down)} failed "
                        f"({len(down)} of {len(self.hosts)} hosts > rollout_max_fail_percent "
                        f"{self.max_fail_percent:g}%)"
                    )
            if self.stopped is None:
                self.begun.add(index)
            return self.stopped is None

    def gate(self, host: str, watch: Watch) -> bool:
        """Record ``host``'s soak; a failed gate stops the rollout. True: the host passed."""
        reason = gate_verdict(watch, self.max_error_rate)
        with self._lock:
            self.outcomes[host].apps.setdefault("_soak", {}).update(asdict(watch))
            if reason and self.stopped is None:
                self.stopper = host
                batch = self.outcomes[host].batch
                self.stopped = (
                    f"rollout stopped at batch {batch}: {host} failed the health gate: {reason}"
                )
        return reason is None

    def record(self, host: str, app: str, **facts: Any) -> None:
        """Record a fact about ``host``'s ``app`` (release, version, result...)."""
        with self._lock:
            outcome = self.outcomes[host]
            outcome.apps.setdefault(app, {}).update(facts)

    def finish_host(self, host: str, result: str, seconds: float) -> None:
        """Set ``host``'s overall result and duration."""
        with self._lock:
            self.outcomes[host].result = result
            self.outcomes[host].seconds = round(seconds, 1)

    def settle(self, failed: Collection[str]) -> None:
        """Give hosts without a recorded result theirs: failed (pyinfra failed them), unchanged
        (their batch ran and nothing needed to change) or not started."""
        with self._lock:
            for outcome in self.outcomes.values():
                if outcome.result != "not started":
                    continue
                if outcome.host in failed:
                    outcome.result = "failed"
                elif outcome.batch - 1 in self.begun:
                    outcome.result = "unchanged"

    def batch_changed(self, index: int) -> bool:
        """Whether a host of batch ``index`` got a new release in this run."""
        with self._lock:
            return any(self.outcomes[h].result == "updated" for h in self.batches[index])

    def has_news(self, failed: Collection[str]) -> bool:
        """Whether the run did anything worth a summary: a release, a failure, a stop."""
        with self._lock:
            return self.stopped is not None or any(
                o.result != "not started" or o.host in failed for o in self.outcomes.values()
            )

    def announce(self) -> bool:
        """True once per run: the first release went live, say that the run started."""
        with self._lock:
            first, self.announced = not self.announced, True
            return first

    def to_rollback(self) -> bool:
        """Whether updated hosts go back to their previous release now."""
        return self.stopped is not None and self.on_failure == "rollback"

    def summary(self) -> dict[str, Any]:
        """The machine-readable fleet summary (documented in the README)."""
        with self._lock:
            return {
                "stopped": self.stopped,
                "on_failure": self.on_failure,
                "batches": [list(batch) for batch in self.batches],
                "seconds": round(time.time() - self.started, 1),
                "hosts": [asdict(self.outcomes[name]) for name in self.hosts],
            }
