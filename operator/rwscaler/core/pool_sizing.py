"""Connection pool sizes per side, from the seed's guidelines (section 5), for the current read pool.

write pool: max = cores x 2, min idle = cores; read pool: max = cores x 2 x servers in the read
pool, min idle = cores x servers. Timeouts per side (seed ranges, the values chosen here):
connect 5 s (write) and 15 s (read); query 30 s (write) and 120 s (read). Recomputed on every
tick, so a change in the read pool changes the read side's size.
"""

from __future__ import annotations

from rwscaler.core.plan import PoolSizing

WRITE_CONNECT_TIMEOUT_S = 5.0
READ_CONNECT_TIMEOUT_S = 15.0
WRITE_QUERY_TIMEOUT_S = 30.0
READ_QUERY_TIMEOUT_S = 120.0


def size_pools(server_cores: int, read_servers: int) -> PoolSizing:
    servers = max(read_servers, 1)  # the pool is never empty: the primary serves when no replica does
    return PoolSizing(
        write_max_connections=server_cores * 2,
        write_min_idle=server_cores,
        read_max_connections=server_cores * 2 * servers,
        read_min_idle=server_cores * servers,
        write_connect_timeout_s=WRITE_CONNECT_TIMEOUT_S,
        read_connect_timeout_s=READ_CONNECT_TIMEOUT_S,
        write_query_timeout_s=WRITE_QUERY_TIMEOUT_S,
        read_query_timeout_s=READ_QUERY_TIMEOUT_S,
    )
