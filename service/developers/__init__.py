"""The developers domain: schemas, the service that queries and writes, the HTTP controller."""
