"""Who is on the other end: the client address behind a trusted proxy, and which network
addresses the server may contact on a caller's say (pure functions, no I/O)."""

from __future__ import annotations

import ipaddress

# Shared address space (RFC 6598, carrier-grade NAT): not "private" to Python, not public.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def client_address(peer: str, forwarded_for: str | None, trusted_proxy: str) -> str:
    """The client's address: the peer's, or the last X-Forwarded-For hop when the peer is
    the one trusted proxy (the proxy appends the address it saw; earlier hops are the
    client's own claims and are ignored)."""
    if not trusted_proxy or peer != trusted_proxy or not forwarded_for:
        return peer
    last = forwarded_for.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return peer


def is_public(host: str) -> bool:
    """Whether `host` is a literal, globally routable unicast address.

    Loopback, private (RFC 1918, fc00::/7), link-local, CGNAT, multicast, unspecified and
    reserved addresses are not, and neither is a name (mDNS `.local` or any other)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
        or not ip.is_global
    )


def filter_candidates(sdp: str, *, allow_local: bool, max_candidates: int) -> tuple[str, int]:
    """The SDP with remote ICE candidates the gateway must not contact removed, and at most
    `max_candidates` kept; returns (sdp, dropped). `allow_local` keeps local addresses
    (tests and single-machine demos, HOTLINE_ICE_LOOPBACK)."""
    kept, dropped, out = 0, 0, []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            address = parts[4] if len(parts) > 7 else ""
            if kept >= max_candidates or not (allow_local or is_public(address)):
                dropped += 1
                continue
            kept += 1
        out.append(line)
    return "\r\n".join(out) + "\r\n", dropped
