from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.backoff import Backoff
from gateway.core.delivery import LogAnswer, is_recoverable
from gateway.core.flow import InboundLimit, Outbox, RateDecision, TokenBucket


def test_outbox_bounds_events_but_never_control() -> None:
    box = Outbox(2)
    assert box.offer_event(b"e1") and box.offer_event(b"e2")
    assert box.full
    assert not box.offer_event(b"e3")  # refused: the shell closes with 4008
    assert box.put_control(b"pong")  # control replies are not bounded by events (defect 9)
    assert box.take() == [b"e1", b"e2", b"pong"]
    assert not box.full and len(box) == 0


def test_outbox_counts_events_only() -> None:
    box = Outbox(1)
    box.put_control(b"c")
    assert box.offer_event(b"e") and box.full
    box.put_control(b"c2")
    assert box.events == 1 and len(box) == 3
    assert box.take() == [b"c", b"e", b"c2"] and not box.full
    with pytest.raises(ValueError, match="limit"):
        Outbox(0)


def test_outbox_bounds_bytes_control_replies_included() -> None:
    box = Outbox(100, max_bytes=10)
    assert box.put_control(b"123456")
    assert not box.put_control(b"12345")  # 11 bytes: refused, the caller closes 4008
    assert box.offer_event(b"1234") and box.size == 10 and box.full
    assert not box.offer_event(b"1")
    assert box.take() == [b"123456", b"1234"] and box.size == 0
    # One frame larger than the bound still fits an empty outbox (never a close loop).
    assert box.offer_event(b"x" * 50) and not box.put_control(b"y")


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=30)), max_size=40), st.integers(1, 80))
def test_outbox_never_exceeds_its_byte_bound_past_one_frame(
    ops: list[tuple[bool, bytes]], bound: int
) -> None:
    box = Outbox(1000, max_bytes=bound)
    for is_event, frame in ops:
        accepted = box.offer_event(frame) if is_event else box.put_control(frame)
        assert box.size == sum(map(len, box.frames))
        assert box.size <= bound or len(box.frames) == 1
        if not accepted:
            assert box.frames and box.size + len(frame) > bound


def test_token_bucket_unlimited() -> None:
    bucket = TokenBucket(0, 1, 0.0)
    assert all(bucket.take(0.0) == RateDecision.ALLOW for _ in range(1000))
    assert bucket.retry_after() == 0


@given(st.integers(0, 40), st.floats(0, 1, exclude_max=True))
def test_backoff_is_full_jitter_capped(attempt: int, rand: float) -> None:
    b = Backoff(base=0.1, cap=5.0)
    assert 0 <= b.delay(attempt, rand) <= 5.0
    assert b.ceiling(attempt) == min(5.0, 0.1 * 2**attempt)


def test_backoff_sequence_doubles() -> None:
    b = Backoff(base=3.0, cap=30.0)
    assert [b.ceiling(n) for n in range(5)] == [3, 6, 12, 24, 30]
    assert b.ceiling(10**6) == 30
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0)


def test_resume_recoverable() -> None:
    assert is_recoverable(((10, 0),), LogAnswer(held=True, floor=((5, 0),)))
    assert not is_recoverable(((4, 9),), LogAnswer(held=False, floor=((5, 0),)))  # trimmed, or lost
    assert is_recoverable(((0, 0),), LogAnswer(held=False, floor=((0, 0),)))  # the start, nothing trimmed
    assert not is_recoverable(((0, 0),), LogAnswer(held=False, floor=((5, 0),)))
    # Partitioned: every partition must be whole (a 0-0 partition: nothing trimmed there).
    assert is_recoverable(((10, 0), (0, 0)), LogAnswer(held=True, floor=((5, 0), (0, 0))))
    assert not is_recoverable(((10, 0), (0, 0)), LogAnswer(held=True, floor=((5, 0), (1, 0))))
    assert not is_recoverable(((10, 0), (3, 0)), LogAnswer(held=False, floor=((0, 0), (0, 0))))


def test_inbound_limit_keeps_a_separate_allowance_for_subscribes() -> None:
    limit = InboundLimit(20.0, subscribe_burst=140, now=0.0)
    assert [limit.take(0.0, subscribe=True) for _ in range(140)] == [RateDecision.ALLOW] * 140
    assert limit.take(0.0, subscribe=True) == RateDecision.LIMIT
    assert limit.retry_after(subscribe=True) == pytest.approx(1 / 20)
    # Other messages have their own bucket (bursts of twice the rate), untouched.
    assert [limit.take(0.0, subscribe=False) for _ in range(40)] == [RateDecision.ALLOW] * 40
    assert limit.take(0.0, subscribe=False) == RateDecision.LIMIT
    # Both refill at the rate.
    assert limit.take(0.05, subscribe=True) == RateDecision.ALLOW
    assert limit.take(0.1, subscribe=False) == RateDecision.ALLOW


def test_inbound_limit_unlimited_and_burst_sizes() -> None:
    limit = InboundLimit(0.0, subscribe_burst=1, now=0.0)
    assert all(limit.take(0.0, subscribe=s) == RateDecision.ALLOW for s in (True, False) for _ in range(500))
    assert InboundLimit.message_burst(20.0) == 40
    assert InboundLimit.message_burst(0.2) == 1
    assert InboundLimit.subscribe_burst_for(100, 20.0) == 140


@given(st.floats(0.1, 1000), st.integers(1, 1000))
def test_inbound_limit_subscribe_burst_always_covers_max_subscriptions(rate: float, max_subs: int) -> None:
    limit = InboundLimit(rate, subscribe_burst=InboundLimit.subscribe_burst_for(max_subs, rate), now=0.0)
    assert all(limit.take(0.0, subscribe=True) == RateDecision.ALLOW for _ in range(max_subs))


def test_restart_policy_backs_off_and_gives_up_only_on_a_crash_loop() -> None:
    from gateway.core.supervision import RestartPolicy

    policy = RestartPolicy(healthy_after=60.0, give_up_after=4)
    delays = [policy.failed(ran_for=0.5, rand=0.999) for _ in range(3)]
    assert all(d is not None and d > 0 for d in delays)
    assert delays == sorted(d for d in delays if d is not None)  # growing
    assert policy.failed(ran_for=0.5, rand=0.5) is None  # the 4th quick failure in a row
    # A component that ran for a while before failing starts a new count.
    policy = RestartPolicy(healthy_after=60.0, give_up_after=4)
    for _ in range(10):
        assert policy.failed(ran_for=0.5, rand=0.5) is not None
        assert policy.failed(ran_for=0.5, rand=0.5) is not None
        assert policy.failed(ran_for=120.0, rand=0.5) is not None
