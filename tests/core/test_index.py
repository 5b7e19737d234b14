"""The subscription index against a brute-force matcher (no event loop)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.filters import compile_filters
from gateway.core.index import Subscription, SubscriptionIndex
from gateway.core.routing import channels_for, visible_to
from schemas.channels import Channel, parse_channel
from schemas.control import Filters
from schemas.stream import StreamEvent

IDS = ["a", "b", "c"]
ORGS = [None, "o1", "o2"]
STATUSES = ["running", "failed", "completed"]
TYPES = ["execution.started", "step.completed", "approval.required"]

channels = st.sampled_from(
    ["executions", "approvals"]
    + [f"executions:{i}" for i in IDS]
    + [f"workflows:{i}" for i in IDS]
    + [f"users:{i}" for i in IDS]
)
id_lists = st.lists(st.sampled_from(IDS), max_size=2)
filters = st.builds(
    Filters,
    workflow_ids=id_lists,
    execution_ids=id_lists,
    statuses=st.lists(st.sampled_from(STATUSES), max_size=2),
)
events = st.builds(
    lambda t, e, w, s, o, u, n: StreamEvent(
        id=f"{n}-0".encode(),
        sid=(n, 0),
        type=t,
        data=b"{}",
        timestamp=b"",
        execution_id=e,
        workflow_id=None if (t.startswith("step") and w == "c") else w,
        status=s,
        org=o,
        user=u,
    ),
    st.sampled_from(TYPES),
    st.sampled_from(IDS),
    st.sampled_from(IDS),
    st.sampled_from([*STATUSES, None]),
    st.sampled_from(ORGS),
    st.sampled_from([None, None, None, "a", "b"]),
    st.integers(1, 10**6),
)
owners = st.integers(0, 5)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("sub"), owners, channels, filters),
        st.tuples(st.just("unsub"), owners, channels),
        st.tuples(st.just("drop"), owners),
        st.tuples(st.just("event"), events),
    ),
    max_size=60,
)


def _org(owner: int) -> str | None:
    return ORGS[owner % 3]


def brute(model: dict[tuple[int, str], Filters], event: StreamEvent) -> set[int]:
    """The specification, literally: docs/protocol.md's routing, tenancy and filters."""
    out = set()
    routed = {str(c.kind) + (f":{c.key}" if c.key else "") for c in channels_for(event)}
    for (owner, name), flt in model.items():
        if name not in routed or not visible_to(event, _org(owner)):
            continue
        if flt.execution_ids and event.execution_id not in flt.execution_ids:
            continue
        if flt.workflow_ids and event.workflow_id not in flt.workflow_ids:
            continue
        if flt.statuses and event.status not in flt.statuses:
            continue
        out.add(owner)
    return out


@settings(max_examples=300)
@given(ops)
def test_index_matches_brute_force(operations: list[tuple[object, ...]]) -> None:
    index: SubscriptionIndex[int] = SubscriptionIndex()
    model: dict[tuple[int, str], Filters] = {}
    for op in operations:
        match op:
            case ("sub", int(owner), str(name), Filters() as flt):
                index.add(Subscription(owner, _org(owner), parse_channel(name), compile_filters(flt)))
                model[(owner, name)] = flt
            case ("unsub", int(owner), str(name)):
                index.remove(owner, parse_channel(name))
                model.pop((owner, name), None)
            case ("drop", int(owner)):
                index.remove_owner(owner)
                for key in [k for k in model if k[0] == owner]:
                    del model[key]
            case ("event", StreamEvent() as event):
                matched = index.match(event)
                assert len(matched) == len(set(matched)), "an owner matched twice"
                assert set(matched) == brute(model, event)
    assert len(index) == len(model)


def _event(**kw: object) -> StreamEvent:
    base: dict[str, object] = dict(
        id=b"1-0", sid=(1, 0), type="execution.started", data=b"{}", timestamp=b"",
        execution_id="e1", workflow_id="w1", status="running",
    )  # fmt: skip
    base.update(kw)
    return StreamEvent(**base)  # type: ignore[arg-type]


def test_one_copy_however_many_subscriptions_match() -> None:
    # Defect 4: the original sent one copy per matching channel.
    index: SubscriptionIndex[str] = SubscriptionIndex()
    for name in ("executions", "executions:e1", "workflows:w1"):
        index.add(Subscription("c", None, parse_channel(name), compile_filters(None)))
    assert index.match(_event()) == ["c"]


def test_tenancy() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add(Subscription("acme", "acme", Channel(("executions", None)), compile_filters(None)))
    index.add(Subscription("globex", "globex", Channel(("executions", None)), compile_filters(None)))
    assert index.match(_event(org="acme")) == ["acme"]
    assert sorted(index.match(_event())) == ["acme", "globex"]


def test_user_events_only_on_the_users_channel() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add(Subscription("all", None, Channel(("executions", None)), compile_filters(None)))
    index.add(Subscription("u1", None, Channel(("users", "u1")), compile_filters(None)))
    assert index.match(_event(user="u1")) == ["u1"]


def test_step_and_approval_events_route() -> None:
    # Defect 5: step and approval events never went out.
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.add(Subscription("exec", None, Channel(("executions", "e1")), compile_filters(None)))
    index.add(Subscription("appr", None, Channel(("approvals", None)), compile_filters(None)))
    assert index.match(_event(type="step.completed", workflow_id=None)) == ["exec"]
    assert sorted(index.match(_event(type="approval.required"))) == ["appr", "exec"]


def test_resubscribe_replaces_filters() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    ch = Channel(("executions", None))
    index.add(Subscription("c", None, ch, compile_filters(Filters(statuses=["failed"]))))
    old = index.add(Subscription("c", None, ch, compile_filters(Filters(statuses=["running"]))))
    assert old is not None and old.filter.statuses == {"failed"}
    assert index.match(_event(status="running")) == ["c"]
    assert index.match(_event(status="failed")) == []
    assert len(index) == 1
