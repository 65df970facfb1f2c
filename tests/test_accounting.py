"""The measurement core with numbers alone: no event loop, no clock, no sockets."""

from __future__ import annotations

from bench.accounting import (
    MAX_ERROR_KINDS,
    OTHER_ERRORS,
    ErrorKinds,
    EventAccounting,
    MeasurementWindow,
    RequestAccounting,
    SubscriberLog,
    Totals,
)
from bench.drivers.base import ResponseInvalid
from bench.wire import WireBytes
from common.events import EventPayloads
from common.histogram import LatencyHistogram
from common.schedule import DueTimes

MS = 1_000_000
START = 10_000 * MS


def window() -> MeasurementWindow:
    """Warm-up from 10 s to 11 s, measured from 11 s to 13 s."""
    return MeasurementWindow.after_warmup(START, warmup_s=1.0, duration_s=2.0)


def recorded_us(histogram: LatencyHistogram, *expected_us: int) -> bool:
    """Whether the histogram holds exactly these values (in us), to its own precision."""
    hdr = histogram.hdr
    held = [
        hdr.get_lowest_equivalent_value(item.value_iterated_to)
        for item in hdr.get_recorded_iterator()
        for _ in range(item.count_at_value_iterated_to)
    ]
    return held == sorted(hdr.get_lowest_equivalent_value(value) for value in expected_us)


def test_the_window_is_decided_by_when_something_started():
    measured = window()
    assert measured.phase(START) == "warm-up"
    assert measured.phase(START + 1000 * MS - 1) == "warm-up"
    assert measured.phase(START + 1000 * MS) == "measured"
    assert measured.phase(START + 3000 * MS - 1) == "measured"
    assert measured.phase(START + 3000 * MS) == "after"
    assert measured.contains(START + 2000 * MS) and not measured.contains(START)
    assert measured.measured_s == 2.0


def test_a_stop_closes_the_window_early_never_late():
    measured = window()
    measured.close_at(START + 1500 * MS)
    assert measured.measured_s == 0.5
    assert measured.phase(START + 1500 * MS) == "after"
    measured.close_at(START + 2500 * MS)  # a later stop does not reopen it
    assert measured.measured_s == 0.5
    stopped_in_warm_up = window()
    stopped_in_warm_up.close_at(START)
    assert stopped_in_warm_up.measured_s == 0.0


def test_closed_loop_counts_answers_sent_in_the_window_from_their_send():
    requests = RequestAccounting(window(), timeout_s=5)
    requests.answered(START + 999 * MS, START + 1010 * MS)  # sent in warm-up: not counted
    requests.answered(START + 1000 * MS, START + 1003 * MS)
    requests.answered(START + 2000 * MS, START + 2007 * MS)
    assert requests.ok == 2
    assert recorded_us(requests.latency, 3000, 7000)


def test_open_loop_measures_from_the_intended_send_and_splits_the_wait():
    requests = RequestAccounting(window(), timeout_s=5)
    due = START + 1100 * MS
    # Due at +0, its slot busy until +4 ms, sent at +6 ms, answered at +9 ms.
    requests.answered_on_schedule(due, due + 4 * MS, due + 6 * MS, due + 9 * MS)
    # Due at +0 with the slot free since before: waiting was all the generator's.
    requests.answered_on_schedule(due, due - 50 * MS, due + 2 * MS, due + 3 * MS)
    assert requests.ok == 2
    assert recorded_us(requests.latency, 3000, 9000)  # from the intended send
    assert recorded_us(requests.service_time, 1000, 3000)  # from the actual send
    assert recorded_us(requests.slot_wait, 1, 4000)  # nothing (at the 1 us floor), 4 ms
    assert recorded_us(requests.send_lag, 2000, 2000)
    requests.answered_on_schedule(START, START, START, START + MS)  # due in warm-up
    assert requests.ok == 2


def test_failures_are_counted_by_kind_and_timeouts_censored_at_the_time_waited():
    requests = RequestAccounting(window(), timeout_s=0.05)
    sent = START + 1500 * MS
    requests.failed(START, START + 60 * MS, TimeoutError())  # in warm-up: counted apart
    requests.failed(sent, sent + 50 * MS, TimeoutError())
    requests.failed(sent, sent + 2 * MS, ResponseInvalid("get_user: wrong name"))
    requests.failed(sent, sent + 2 * MS, ResponseInvalid("get_user: wrong name"))
    assert (requests.warmup_errors, requests.timeouts, requests.errors) == (1, 1, 2)
    assert requests.error_kinds.counts == {
        "timeout after 0.05 s": 1,
        "ResponseInvalid: get_user: wrong name": 2,
    }
    assert recorded_us(requests.censored, 50_000)


def test_requests_never_sent_are_censored_until_the_window_closed():
    requests = RequestAccounting(window(), timeout_s=5)
    end = START + 3000 * MS
    requests.never_sent(end - 5 * MS, end - 100 * MS)  # noticed early: waited until the end
    requests.never_sent(end - 5 * MS, end + 20 * MS)  # noticed late: waited until then
    # What is left of a schedule: due every second from 10 s, in the window at 11 and 12 s.
    requests.unsent_in_window(iter(range(START, START + 10_000 * MS, 1000 * MS)), end)
    assert requests.unsent == 4
    assert recorded_us(requests.censored, 5000, 25_000, 1_000_000, 2_000_000)


def test_checks_are_timed_only_for_requests_in_the_window():
    requests = RequestAccounting(window(), timeout_s=5)
    requests.checked(START, 7 * MS)
    requests.checked(START + 1000 * MS, 2 * MS)
    assert requests.check_ns == 2 * MS


def test_error_kinds_are_bounded():
    kinds = ErrorKinds()
    for index in range(MAX_ERROR_KINDS + 5):
        kinds.count(f"kind {index}")
    kinds.count("kind 0", 3)
    assert len(kinds.counts) == MAX_ERROR_KINDS + 1
    assert kinds.counts[OTHER_ERRORS] == 5
    assert kinds.counts["kind 0"] == 4


def test_totals_subtract_into_the_window_share():
    before = Totals(1.0, WireBytes(100, 1000), WireBytes(10, 20), 4)
    after = Totals(1.5, WireBytes(150, 1600), WireBytes(15, 50), 6)
    assert after - before == Totals(0.5, WireBytes(50, 600), WireBytes(5, 30), 2)


# Events ------------------------------------------------------------------------------------
RATE = 100  # events a second: event n is due at START + (n - 1) * 10 ms
PAYLOADS = EventPayloads(40)


def started_events() -> EventAccounting:
    """Events due from START; measured from event 101 (11 s) to event 300."""
    events = EventAccounting(PAYLOADS)
    events.start(DueTimes(START, RATE), window())
    return events


def arrive(log: SubscriberLog, seq: int, after_ms: float) -> bool:
    due = START + (seq - 1) * 10 * MS
    return log.received(due + round(after_ms * MS), seq, due, PAYLOADS(seq), 50)


def test_a_subscriber_log_counts_deliveries_duplicates_and_order():
    events = started_events()
    log = SubscriberLog(events)
    assert arrive(log, 101, 2)
    assert arrive(log, 103, 4)
    assert arrive(log, 102, 30)  # after 103: out of order
    assert arrive(log, 103, 40)  # again: a duplicate, not a second latency
    assert (log.counts[101], log.counts[102], log.counts[103]) == (1, 1, 2)
    assert log.out_of_order == 1 and log.duplicates == 1
    assert recorded_us(events.latency, 2000, 4000, 30_000)
    assert events.payload_bytes == 3 * 50  # each event once


def test_events_outside_the_window_are_kept_but_not_measured():
    events = started_events()
    log = SubscriberLog(events)
    assert arrive(log, 100, 1)  # due in warm-up
    assert arrive(log, 301, 1)  # due after the window
    assert arrive(log, 100, 1)  # a warm-up duplicate is not the window's
    assert log.counts[100] == 2 and log.counts[301] == 1
    assert events.latency.count == 0 and log.duplicates == 0
    assert len(log.counts) > 301  # grown to hold it


def test_a_wrong_event_is_an_error_not_a_delivery():
    problems: list[str] = []
    events = started_events()
    events.on_invalid = problems.append
    log = SubscriberLog(events)
    due = START + 100 * 10 * MS
    assert not log.received(due, 101, due + 1, PAYLOADS(101), 50)  # stamped late
    assert not log.received(due, 101, due, PAYLOADS(102), 50)  # another event's payload
    assert not log.received(due, 0, START, PAYLOADS(0), 50)  # numbers start at 1
    assert events.invalid == 3 and len(problems) == 3
    assert log.counts[101] == 0 and events.payload_bytes == 0


def test_nothing_is_an_event_before_the_schedule_is_known():
    events = EventAccounting(PAYLOADS)
    log = SubscriberLog(events)
    assert not log.received(START, 1, START, PAYLOADS(1), 50)
    assert events.invalid == 1


def test_arrivals_of_one_event_are_counted_up_to_255():
    log = SubscriberLog(started_events())
    for _ in range(300):
        arrive(log, 150, 1)
    assert log.counts[150] == 255
    assert log.duplicates == 299
