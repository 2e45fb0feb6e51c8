"""Rollout planning, failure budget and health gate: pure logic."""

import pytest

from operations.local.rollout import (
    Rollout,
    RolloutError,
    Watch,
    gate_verdict,
    over_budget,
    parse_batches,
    parse_on_failure,
    parse_percent,
    plan_batches,
)

HOSTS = [f"h{i}" for i in range(1, 11)]


def test_default_is_one_batch_of_every_host():
    assert plan_batches(HOSTS, parse_batches(None)) == (tuple(HOSTS),)


def test_canary_quarter_rest():
    batches = plan_batches(HOSTS, parse_batches([1, "25%", "100%"]))
    assert [len(b) for b in batches] == [1, 3, 6]
    assert [h for b in batches for h in b] == HOSTS  # inventory order kept, every host once


def test_the_last_size_repeats():
    assert [len(b) for b in plan_batches(HOSTS, [1, 2])] == [1, 2, 2, 2, 2, 1]
    assert [len(b) for b in plan_batches(HOSTS[:6], [1, 2, "100%"])] == [1, 2, 3]


def test_percentages_round_up_to_at_least_one_host():
    assert [len(b) for b in plan_batches(HOSTS[:3], ["10%"])] == [1, 1, 1]
    assert [len(b) for b in plan_batches(HOSTS, ["15%"])] == [2, 2, 2, 2, 2]


@pytest.mark.parametrize(
    "bad", [[], "1", [0], [-1], ["0%"], ["101%"], ["25"], [True], [1.5], {}, 3]
)
def test_bad_batches_are_refused_in_one_line(bad):
    with pytest.raises(RolloutError) as error:
        parse_batches(bad)
    assert str(error.value).startswith("rollout_batches: ") and "\n" not in str(error.value)


def test_percent_and_on_failure_checks():
    assert parse_percent("rollout_max_fail_percent", 10) == 10.0
    for bad in (-1, 101, "5", True, None):
        with pytest.raises(RolloutError):
            parse_percent("rollout_max_fail_percent", bad)
    assert parse_on_failure("rollback") == "rollback"
    with pytest.raises(RolloutError):
        parse_on_failure("undo")


def test_budget():
    assert not over_budget(0, 6, 0)
    assert over_budget(1, 6, 0)
    assert not over_budget(1, 6, 20)  # 16.7 % <= 20 %
    assert over_budget(2, 6, 20)


def test_gate_verdicts():
    assert gate_verdict(Watch(requests=100, errors=0, probes=10, failed_probes=0), 0) is None
    assert gate_verdict(Watch(0, 0, 10, 0), 0) is None  # no traffic: health probes decide
    assert "1 of 10 health checks failed" in gate_verdict(Watch(100, 0, 10, 1), 50)
    reason = gate_verdict(Watch(200, 3, 10, 0), 1)
    assert reason.startswith("3 of 200 requests answered 5xx (1.5% > rollout_max_error_rate 1%)")
    assert gate_verdict(Watch(200, 2, 10, 0), 1) is None


def test_a_failed_canary_over_budget_stops_the_next_batch():
    r = Rollout(plan_batches(HOSTS[:6], [1, 2, "100%"]), max_fail_percent=0)
    assert r.may_start(0, failed=set())
    assert not r.may_start(1, failed={"h1"})
    assert (
        r.stopped
        == "rollout stopped after batch 1: h1 failed (1 of 6 hosts > rollout_max_fail_percent 0%)"
    )
    assert not r.may_start(2, failed={"h1"})  # stays stopped


def test_failures_within_budget_go_on():
    r = Rollout(plan_batches(HOSTS[:6], [1, 2, "100%"]), max_fail_percent=20)
    assert r.may_start(1, failed={"h1"})
    assert not r.may_start(2, failed={"h1", "h3"})
    assert "h1, h3 failed (2 of 6" in r.stopped


def test_a_failed_gate_stops_and_rollback_is_asked_only_then():
    r = Rollout(plan_batches(HOSTS[:6], [1, 2, "100%"]), on_failure="rollback")
    assert r.gate("h1", Watch(50, 0, 5, 0)) and not r.to_rollback()
    assert not r.gate("h3", Watch(50, 5, 5, 0))
    assert r.stopped.startswith("rollout stopped at batch 2: h3 failed the health gate: 5 of 50")
    assert r.to_rollback() and not r.may_start(2, failed=set()) and r.stopper == "h3"


def test_summary_lists_every_host_in_rollout_order():
    r = Rollout(plan_batches(HOSTS[:3], [1, "100%"]))
    r.record("h2", "notes", release="20261202T000000Z-abc", result="updated")
    r.finish_host("h2", "updated", 3.14)
    s = r.summary()
    assert [h["host"] for h in s["hosts"]] == ["h1", "h2", "h3"]
    assert s["hosts"][1] == {
        "host": "h2", "batch": 2, "result": "updated", "seconds": 3.1,
        "apps": {"notes": {"release": "20261202T000000Z-abc", "result": "updated"}},
    }  # fmt: skip
    assert s["hosts"][0]["result"] == "not started" and s["stopped"] is None


def test_settle_names_what_happened_to_each_host():
    r = Rollout(plan_batches(HOSTS[:4], [1, 1, "100%"]))
    assert r.may_start(0, failed=set()) and r.may_start(1, failed=set())
    r.finish_host("h1", "updated", 1.0)
    assert not r.may_start(2, failed={"h2"})
    r.settle(failed={"h2"})
    assert [r.outcomes[h].result for h in HOSTS[:4]] == [
        "updated", "failed", "not started", "not started",
    ]  # fmt: skip


def test_news_and_changed_batches():
    r = Rollout(plan_batches(HOSTS[:3], [1, "100%"]))
    assert not r.has_news(failed=set()) and not r.batch_changed(0)
    assert r.has_news(failed={"h2"})
    r.finish_host("h1", "updated", 1.0)
    assert r.batch_changed(0) and not r.batch_changed(1) and r.has_news(failed=set())


def test_settings_defaults_and_bad_keys_in_one_line():
    from operations.settings.rollout import rollout_settings
    from operations.settings.validators import ConfigError

    s = rollout_settings({})
    assert (s.sizes, s.max_fail_percent, s.soak_seconds, s.on_failure) == (("100%",), 0, 0, "stop")
    assert s.webhook_url is None and s.summary_file is None
    for key, bad in [
        ("rollout_batches", [0]), ("rollout_soak_seconds", -1), ("rollout_soak_seconds", "5"),
        ("rollout_max_error_rate", 200), ("rollout_on_failure", "undo"),
        ("notify_webhook_url", "ftp://x"), ("fleet_summary_file", ""),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as error:
            rollout_settings({key: bad})
        assert str(error.value).startswith(f"{key}: ") and "\n" not in str(error.value)


def test_announce_is_true_once():
    r = Rollout(plan_batches(HOSTS[:2], ["100%"]))
    assert [r.announce(), r.announce(), r.announce()] == [True, False, False]
