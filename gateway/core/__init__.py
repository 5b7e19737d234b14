"""The sans-I/O core: subscription index, filters, routing, session state machine,
flow-control and backoff policies. Imports schemas, msgspec and the stdlib only: no
asyncio, no Redis, no Starlette. Tested without an event loop."""
