"""Per-address accounting: sockets held, clusters entered and the connect/join
rate of each client address, so that one address cannot take the server's
sockets, clusters or presence bandwidth from everyone else."""

import ipaddress

from aiohttp import web

from .ratelimit import TokenBucket

DEFAULT_SOCKETS_PER_ADDRESS = 64
DEFAULT_CLUSTERS_PER_ADDRESS = 32
# Every WebSocket opened and every join spends one token.
DEFAULT_ADDRESS_RATE = 10.0
DEFAULT_ADDRESS_BURST = 60.0


def address_key(host) -> str:
    """An IPv4 address as is; IPv6 by its /64 (one subscriber's usual share);
    an IPv4-mapped IPv6 address as the IPv4 one."""
    try:
        ip = ipaddress.ip_address(host)
    except (TypeError, ValueError):
        return str(host)
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


# The client's address on a request (behind a trusted proxy, from its X-Forwarded-For).
CLIENT = web.RequestKey("client", str)


def _normal(host) -> str:
    """One spelling per address (an IPv4-mapped IPv6 one as IPv4)."""
    try:
        ip = ipaddress.ip_address(host)
    except (TypeError, ValueError):
        return str(host)
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


def client_address(remote, forwarded_for: str | None, trusted: frozenset) -> tuple[str, bool]:
    """(the client's address, True if it came through a trusted proxy). From
    a trusted proxy, the client is the last X-Forwarded-For hop that is not
    one of the proxies (the ones before it are the client's to make up)."""
    remote = _normal(remote)
    if remote not in trusted:
        return remote, False
    for hop in reversed((forwarded_for or "").split(",")):
        hop = _normal(hop.strip())
        if hop and hop not in trusted:
            return hop, True
    return remote, True


class Address:
    __slots__ = ("sockets", "clusters", "bucket")

    def __init__(self, bucket: TokenBucket):
        self.sockets = 0
        self.clusters: dict[str, int] = {}  # cluster -> this address's sockets joined there
        self.bucket = bucket


class AddressBook:
    def __init__(self, *, max_sockets: int = DEFAULT_SOCKETS_PER_ADDRESS,
                 max_clusters: int = DEFAULT_CLUSTERS_PER_ADDRESS,
                 rate: float = DEFAULT_ADDRESS_RATE, burst: float = DEFAULT_ADDRESS_BURST):
        self.max_sockets = max_sockets
        self.max_clusters = max_clusters
        self.rate = rate
        self.burst = burst
        self.addresses: dict[str, Address] = {}

    def _get(self, key: str, now: float) -> Address:
        entry = self.addresses.get(key)
        if entry is None:
            entry = self.addresses[key] = Address(TokenBucket(self.rate, self.burst, now))
        return entry

    def open_socket(self, key: str, now: float) -> str | None:
        """Count a new socket; the refusal reason (and nothing counted) if over a limit."""
        entry = self._get(key, now)
        if entry.sockets >= self.max_sockets:
            return "sockets"
        if not entry.bucket.take(now):
            return "rate"
        entry.sockets += 1
        return None

    def close_socket(self, key: str) -> None:
        entry = self.addresses.get(key)
        if entry is not None:
            entry.sockets -= 1

    def may_join(self, key: str, now: float) -> bool:
        return self._get(key, now).bucket.take(now)

    def penalize(self, key: str, now: float) -> None:
        """A socket of this address was closed for flooding: its address waits
        burst/rate seconds (6 s by default) before its next connect or join,
        so a flooder that reconnects at once gets little time to flood."""
        bucket = self._get(key, now).bucket
        bucket.take(now)  # brings the bucket up to date
        bucket.tokens = 1.0 - self.burst

    def enter_cluster(self, key: str, cluster: str) -> bool:
        """Count one more socket of this address in `cluster`; False (nothing
        counted) when that would be one cluster too many."""
        clusters = self.addresses[key].clusters
        n = clusters.get(cluster, 0)
        if n == 0 and len(clusters) >= self.max_clusters:
            return False
        clusters[cluster] = n + 1
        return True

    def leave_cluster(self, key: str, cluster: str) -> None:
        clusters = self.addresses[key].clusters
        n = clusters.get(cluster, 0) - 1
        if n > 0:
            clusters[cluster] = n
        else:
            clusters.pop(cluster, None)

    def prune(self, now: float) -> None:
        """Forget addresses with no socket whose bucket has refilled."""
        for key in [k for k, e in self.addresses.items()
                    if e.sockets <= 0 and e.bucket.idle(now)]:
            del self.addresses[key]
