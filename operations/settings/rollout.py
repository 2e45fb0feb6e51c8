"""The roll-out keys of app_deploy (``rollout_*``, ``fleet_summary_file``, ``notify_*``), read
once per host and checked; the checks themselves are the rollout's and the notifier's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..local.notify import check_webhook
from ..local.rollout import (
    BatchSize,
    RolloutError,
    parse_batches,
    parse_on_failure,
    parse_percent,
)
from .defaults import value
from .validators import ConfigError

MAX_SOAK_SECONDS = 3600


@dataclass(frozen=True)
class RolloutSettings:
    """How one run rolls out across its hosts, and whom it tells."""

    sizes: tuple[BatchSize, ...]
    max_fail_percent: float
    max_error_rate: float
    soak_seconds: float
    on_failure: str
    webhook_url: str | None
    webhook_token_env: str | None
    summary_file: str | None


def rollout_settings(data: Any) -> RolloutSettings:
    """Check the roll-out keys of ``data`` (``host.data``); ConfigError on the first bad one."""
    try:
        soak = value(data, "rollout_soak_seconds")
        if (
            isinstance(soak, bool)
            or not isinstance(soak, (int, float))
            or not (0 <= soak <= MAX_SOAK_SECONDS)
        ):
            raise RolloutError(
                f"rollout_soak_seconds: expected 0 to {MAX_SOAK_SECONDS} seconds, got {soak!r}"
            )
        url, token_env = check_webhook(
            value(data, "notify_webhook_url"), value(data, "notify_webhook_token_env")
        )
        summary_file = value(data, "fleet_summary_file")
        if summary_file is not None and not (isinstance(summary_file, str) and summary_file):
            raise RolloutError(f"fleet_summary_file: expected a path, got {summary_file!r}")
        return RolloutSettings(
            sizes=parse_batches(value(data, "rollout_batches")),
            max_fail_percent=parse_percent(
                "rollout_max_fail_percent", value(data, "rollout_max_fail_percent")
            ),
            max_error_rate=parse_percent(
                "rollout_max_error_rate", value(data, "rollout_max_error_rate")
            ),
            soak_seconds=float(soak),
            on_failure=parse_on_failure(value(data, "rollout_on_failure")),
            webhook_url=url,
            webhook_token_env=token_env,
            summary_file=summary_file,
        )
    except ValueError as error:  # RolloutError, NotifyError: one line, as every bad key
        raise ConfigError(str(error)) from None
