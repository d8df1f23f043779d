"""The developers domain: schemas, errors, dependencies, the single-row service and hot reads, the HTTP
controller; `bulk/` holds the bulk half (import parsers, COPY writer, bulk service, bulk routes)."""
