"""The rollout gate's watch: counting an app's answers in nginx's access log, probing on time."""

from server.watch import count_answers, watch

STAMP = b'10.0.0.9 - - [02/Dec/2026:04:00:00 +0000] "'
LINES = [
    STAMP + b'GET /notes/default/index HTTP/1.1" 200 512 "-" "x"',
    STAMP + b'POST /notes/api/add?x=1 HTTP/1.1" 502 0 "-" "x"',
    STAMP + b'GET /notes HTTP/1.1" 503 0 "-" "x"',
    STAMP + b'GET /notesX/default HTTP/1.1" 500 0 "-" "x"',
    STAMP + b'GET /shop/default/index HTTP/1.1" 500 0 "-" "x"',
    b"garbage line",
]


def test_counts_only_the_apps_requests():
    assert count_answers(LINES, ["notes"]) == (3, 2)
    assert count_answers(LINES, ["shop"]) == (1, 1)
    assert count_answers(LINES, ["pages"]) == (0, 0)
    assert count_answers(LINES, ["notes", "shop"]) == (4, 3)


def test_watch_reads_only_what_was_logged_during_the_watch(tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(LINES[1] + b"\n")  # before the watch: not counted
    now = [0.0]
    probes = []

    def probe():
        probes.append(now[0])
        with log.open("ab") as f:
            f.write(LINES[0] + b"\n")
        return now[0] < 2  # the probes at 2 s and 3 s fail

    def sleep(seconds):
        now[0] += seconds

    result = watch(["notes"], 3, probe, access_log=str(log), clock=lambda: now[0], sleep=sleep)
    assert probes == [0.0, 1.0, 2.0, 3.0]
    assert result == {"requests": 4, "errors": 0, "probes": 4, "failed_probes": 2}


def test_a_rotated_log_is_read_from_its_start(tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(b"x" * 4096)

    def probe():
        log.write_bytes(LINES[2] + b"\n")  # rotated: smaller than where the watch began
        return True

    result = watch(["notes"], 0, probe, access_log=str(log), sleep=lambda s: None)
    assert result == {"requests": 1, "errors": 1, "probes": 1, "failed_probes": 0}
