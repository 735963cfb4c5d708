"""The eventsource-py side of tests/interop_eventsource_py.rs.

    python eventsource_py_interop.py create DB   # eventsource-py creates the database and appends
    python eventsource_py_interop.py read DB     # eventsource-py reads every event, one JSON line each
"""

import asyncio
import json
import sys
from uuid import UUID

from eventsource import DomainEvent, EventRegistry
from eventsource.stores.sqlite import SQLiteEventStore

registry = EventRegistry()


class TaskCreated(DomainEvent):
    event_type: str = "TaskCreated"
    aggregate_type: str = "Task"
    title: str


class TaskCompleted(DomainEvent):
    event_type: str = "TaskCompleted"
    aggregate_type: str = "Task"


registry.register(TaskCreated)
registry.register(TaskCompleted)

PYTHON_TASK = UUID("00000000-0000-4000-8000-000000000001")


async def create(path: str) -> None:
    store = SQLiteEventStore(path, registry)
    async with store:
        await store.initialize()
        event = TaskCreated(aggregate_id=PYTHON_TASK, title="written by python")
        await store.append_events(PYTHON_TASK, "Task", [event], 0)


async def read(path: str) -> None:
    store = SQLiteEventStore(path, registry)
    async with store:
        async for stored in store.read_all():
            print(json.dumps({
                "global_position": stored.global_position,
                "stream_position": stored.stream_position,
                "event": stored.event.model_dump(mode="json"),
            }), flush=True)


if __name__ == "__main__":
    command, path = sys.argv[1], sys.argv[2]
    asyncio.run({"create": create, "read": read}[command](path))
