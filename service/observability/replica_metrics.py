"""Each hot standby's replay lag and whether it answers, read from the lag monitor (service.db.replicas) at each
scrape: nothing is measured for /metrics itself. Standbys are labelled `host:port/database`, without the user or
password of their DATABASE_REPLICA_URLS entry; a standby whose lag is unknown (down, or the primary is not
answering the monitor) has no lag sample, and `devdir_db_replica_up` says why not."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.db.replicas import ReplicaLag
from service.observability.instruments import PREFIX


class ReplicaState(Collector):
    def __init__(self, monitor: ReplicaLag) -> None:
        self.monitor = monitor

    def collect(self) -> Iterable[Metric]:
        lag = GaugeMetricFamily(
            f"{PREFIX}_db_replica_lag_seconds",
            "At most how stale a read on this hot standby can be, in seconds (0: caught up); absent while unknown",
            labels=["replica"],
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_db_replica_up", "1 while this hot standby answers the lag monitor, else 0", labels=["replica"]
        )
        for standby in self.monitor.standbys:
            if standby.lag_seconds is not None:
                lag.add_metric([standby.name], standby.lag_seconds)
            up.add_metric([standby.name], 1 if standby.up else 0)
        yield lag
        yield up
