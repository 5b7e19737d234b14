"""The failover run's per-client check (``tests.ha.load.check_clients``) finds each kind
of wrong delivery, so that a passing run means something."""

from __future__ import annotations

import json

from tests.ha.load import LoadClient, check_clients


def _stream(*ids: str) -> list[tuple[str, dict[bytes, bytes]]]:
    return [(eid, {b"data": json.dumps({"workflow_id": "wf-1"}).encode()}) for eid in ids]


def _client(received: list[str], gaps: list[int] | None = None) -> LoadClient:
    client = LoadClient("c", "ws://unused", "wf-1", position="0-0")
    client.received = received
    client.parts = [0] * len(received)
    client.gaps = gaps or []
    return client


def test_whole_in_order_passes() -> None:
    assert check_clients([_client(["1-0", "2-0", "3-0"])], _stream("1-0", "2-0", "3-0")) == ([], 0)


def test_each_fault_is_found() -> None:
    stream = _stream("1-0", "2-0", "3-0")
    assert "duplicate" in check_clients([_client(["1-0", "1-0", "2-0", "3-0"])], stream)[0][0]
    assert "out of order" in check_clients([_client(["2-0", "1-0", "3-0"])], stream)[0][0]
    assert "never delivered" in check_clients([_client(["1-0", "3-0"])], stream)[0][0]
    # 2-5 was delivered, then lost with the old primary, and nobody said so.
    assert "never told" in check_clients([_client(["1-0", "2-0", "2-5", "3-0"])], stream)[0][0]


def test_an_announced_gap_is_allowed() -> None:
    stream = _stream("1-0", "2-0", "3-0", "4-0")
    # Told recovered:false after the lost 2-5: the gap runs from 2-5 to 4-0, so 2-0,
    # before it, is still owed.
    problems, told = check_clients([_client(["1-0", "2-5", "4-0"], gaps=[2])], stream)
    assert told == 1
    assert problems and "2-0" in problems[0]
    # 3-0 is inside the announced gap (between 2-5 and 4-0): allowed.
    problems, told = check_clients([_client(["1-0", "2-0", "2-5", "4-0"], gaps=[3])], stream)
    assert (problems, told) == ([], 1)


def test_partitions_are_checked_each_on_its_own() -> None:
    """With partitions, ids of different partitions are not compared (equal ids in two
    partitions are two events); order, duplicates and gaps are per partition."""
    e2, e4 = "exec_2", "exec_4"  # partitions 0 and 1 of 3 (crc32)
    stream = [
        (eid, {b"data": json.dumps({"workflow_id": "wf-1", "execution_id": ex}).encode()})
        for eid, ex in (("1-0", e2), ("2-0", e2), ("1-0", e4), ("3-0", e4))
    ]

    def client(items: list[tuple[int, str]]) -> LoadClient:
        c = LoadClient("c", "ws://unused", "wf-1", position="0-0", partitions=3)
        c.parts = [p for p, _ in items]
        c.received = [e for _, e in items]
        return c

    whole = [(1, "1-0"), (0, "1-0"), (1, "3-0"), (0, "2-0")]
    assert check_clients([client(whole)], stream, 3) == ([], 0)
    assert (
        "out of order"
        in check_clients([client([(0, "2-0"), (0, "1-0"), (1, "1-0"), (1, "3-0")])], stream, 3)[0][0]
    )
    assert "never delivered" in check_clients([client([(0, "1-0"), (0, "2-0"), (1, "1-0")])], stream, 3)[0][0]
    assert "duplicate" in check_clients([client([*whole, (1, "3-0")])], stream, 3)[0][0]
