"""Plain Python below everything: settings, field rules and column limits, the domain error base, JSON decoding.
No Litestar, no ORM."""
