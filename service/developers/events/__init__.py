"""The change feed: events from the transactional outbox (`developer_events`, written by triggers in the writer's
transaction), read by one listener per process and fanned out to SSE and WebSocket subscribers."""
