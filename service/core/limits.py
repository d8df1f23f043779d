"""Column limits: the longest text each field may hold, which the field rules check and the tables' CHECKs enforce."""

from __future__ import annotations

NAME_MAX = 200
SPECIALTY_MAX = 100
EMAIL_MAX = 254  # the longest address SMTP can carry (RFC 5321 path limit)
