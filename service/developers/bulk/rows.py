"""An import row as the parsers produce it and the COPY writer sends it."""

from __future__ import annotations

# (row number as the client sent it, name, email, specialty): validated, ready for COPY.
Row = tuple[int, str, str, str]
