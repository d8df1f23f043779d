"""Exports of developers: one snapshot, streamed by COPY as CSV or NDJSON (service.py); the route (controller.py)."""
