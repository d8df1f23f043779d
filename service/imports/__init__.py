"""Background imports: a submitted body is stored with its job and a queue entry in one transaction; workers
(pgqueuer on asyncpg) import it later through the bulk service, and report status and progress in `import_jobs`."""
