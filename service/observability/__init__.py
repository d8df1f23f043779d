"""What the service tells operators: log lines (request ids, their format, the writer thread), metric collectors,
traces, and the throttle on repeated log lines."""
