"""The library executors use to append typed events to the flowwire stream.

>>> from publisher import BlockingPublisher, make_event
>>> with BlockingPublisher.from_url("redis://localhost:6379/0") as pub:  # doctest: +SKIP
...     pub.publish(make_event("execution.started", {"execution_id": "exec_1a2b3c4d",
...                                                  "workflow_id": "wf-1", "status": "running"}))
'1764152400123-0'
"""

from publisher.client import (
    BlockingPublisher,
    InvalidEvent,
    Publication,
    Publisher,
    PublishError,
    PublisherUnavailable,
)
from publisher.settings import RedisSettings, SettingError
from schemas.events import (
    Event,
    approval_event_type,
    execution_event_type,
    make_event,
    step_event_type,
)

__all__ = [
    "BlockingPublisher",
    "Event",
    "InvalidEvent",
    "Publication",
    "PublishError",
    "Publisher",
    "PublisherUnavailable",
    "RedisSettings",
    "SettingError",
    "approval_event_type",
    "execution_event_type",
    "make_event",
    "step_event_type",
]
