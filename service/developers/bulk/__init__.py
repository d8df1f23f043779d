"""Bulk work on developers: parsers (JSON array, NDJSON, CSV) -> rows -> COPY writer, inside the bulk service's
transaction; bulk routes in controller.py."""
