//! The real client IP: the TCP peer, unless the peer is a trusted proxy
//! (`TOLLGATE_TRUSTED_PROXIES`), in which case `X-Forwarded-For` is read from the
//! right, skipping trusted hops, and stopping at a hop it cannot read (which
//! a client could have written). A layer ([`layer`]) stores it on every request, so the
//! gateway's limits, key allowlists, audit events and login throttles agree.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request},
    http::HeaderMap,
};
use ipnet::IpNet;
use tower::util::MapRequestLayer;

/// The resolved client address, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// What per-IP limits count (the gateway's and the login throttle's): an
/// IPv4 address, or an IPv6 address's /64, the block one subscriber usually
/// holds whole, so a caller cannot step through its own block for fresh
/// budgets. An address in the NAT64 well-known prefix `64:ff9b::/96` (RFC
/// 6052) is an IPv4 client seen through a translator (SIIT-DC, 464XLAT), so
/// it counts as that IPv4 address: by its /64, every IPv4 client behind the
/// translator would share one budget.
pub fn counted_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) if NAT64_WELL_KNOWN.contains(&v6) => {
            // The low 32 bits are the IPv4 address (truncation intended).
            IpAddr::V4(Ipv4Addr::from_bits(v6.to_bits() as u32))
        }
        IpAddr::V6(v6) => {
            IpAddr::V6(ipnet::Ipv6Net::new(v6, 64).map_or(v6, |block| block.network()))
        }
        v4 => v4,
    }
}

/// RFC 6052's well-known prefix, whose addresses embed an IPv4 address in
/// their last 32 bits.
const NAT64_WELL_KNOWN: ipnet::Ipv6Net =
    ipnet::Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);

/// An IP address or CIDR range as written in a key's allowlist or a setting
/// (`10.0.0.0/8`, `::1`, `203.0.113.7`). An IPv4-mapped IPv6 entry
/// (`::ffff:203.0.113.7`, `::ffff:0:0/96`) becomes the IPv4 address or range
/// it names: clients are matched by their canonical address, which for an
/// IPv4 client is never the mapped form, so the entry as written could match
/// nobody.
pub fn parse_network(text: &str) -> Option<IpNet> {
    let net = text
        .parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .ok()?;
    Some(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6.addr().to_ipv4_mapped().map_or(net, |v4| {
            // A prefix of 96 to 128 leaves 0 to 32 bits: always valid for IPv4.
            ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, |v4| IpNet::V4(v4.trunc()))
        }),
        other => other,
    })
}

pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Split as bytes and read hop by hop: a byte that is not ASCII in the
    // client's own part of a line (which a proxy appends to) must spoil only
    // that hop, not the address the proxy wrote after it.
    let hops: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .collect();
    // From the right: the nearest hop no trusted proxy vouches for. Past a
    // hop that does not read as an address, every hop may be the client's
    // own writing, so the last trusted one stands.
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop_address(hop) else {
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, or as some proxies write it, an
/// address with a port (`1.2.3.4:5678`, `[2001:db8::1]:443`) or in brackets.
fn hop_address(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })
        .map(|ip| ip.to_canonical())
}

/// The layer that stores [`ClientIp`] on every request. A plain request map
/// (no boxed future, nothing cloned but an `Arc`): every call passes it.
pub fn layer(
    trusted: Arc<[IpNet]>,
) -> MapRequestLayer<impl Fn(Request) -> Request + Clone + Send + Sync + 'static> {
    MapRequestLayer::new(move |mut request: Request| {
        if let Some(ConnectInfo(peer)) = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
        {
            let ip = resolve(peer.ip(), request.headers(), &trusted);
            request.extensions_mut().insert(ClientIp(ip));
        }
        request
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn mapped_entries_name_the_ipv4_address_or_range() {
        let v4 = |ip: &str| IpAddr::V4(ip.parse().unwrap());
        let net = parse_network("::ffff:203.0.113.7").unwrap();
        assert!(net.contains(&v4("203.0.113.7")));
        assert!(!net.contains(&v4("203.0.113.8")));
        let all = parse_network("::ffff:0:0/96").unwrap();
        assert!(all.contains(&v4("8.8.8.8")));
        let block = parse_network("::ffff:10.1.2.3/104").unwrap();
        assert_eq!(block.to_string(), "10.0.0.0/8");
        // Plain entries are as written.
        assert_eq!(
            parse_network("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            parse_network("10.0.0.1").unwrap().to_string(),
            "10.0.0.1/32"
        );
        for bad in [
            "",
            "10.0.0.300",
            "10.0.0.0/33",
            "::ffff:1.2.3.4/129",
            "host",
        ] {
            assert_eq!(parse_network(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(resolve(stranger, &headers("1.2.3.4"), &trusted), stranger);
        assert_eq!(
            resolve(peer, &headers("1.2.3.4"), &trusted).to_string(),
            "1.2.3.4"
        );
        // A client cannot spoof by prepending: the rightmost untrusted hop wins.
        assert_eq!(
            resolve(peer, &headers("6.6.6.6, 1.2.3.4, 10.0.0.7"), &trusted).to_string(),
            "1.2.3.4"
        );
        assert_eq!(resolve(peer, &HeaderMap::new(), &trusted), peer);
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(resolve(mapped, &HeaderMap::new(), &trusted), stranger);
    }

    #[test]
    fn addresses_are_counted_by_subscriber() {
        let counted = |ip: &str| counted_address(ip.parse().unwrap()).to_string();
        assert_eq!(counted("203.0.113.9"), "203.0.113.9");
        assert_eq!(counted("::ffff:203.0.113.9"), "203.0.113.9");
        // An IPv6 subscriber's /64 is one budget.
        assert_eq!(counted("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(counted("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::");
        assert_eq!(counted("2001:db8:1:3::1"), "2001:db8:1:3::");
        // IPv4 clients through a NAT64 translator each keep their own.
        assert_eq!(counted("64:ff9b::203.0.113.9"), "203.0.113.9");
        assert_eq!(counted("64:ff9b::198.51.100.7"), "198.51.100.7");
        // Only the well-known /96 embeds an address; the rest of its /64 does not.
        assert_eq!(counted("64:ff9b::1:203.0.113.9"), "64:ff9b::");
    }

    #[test]
    fn hops_with_ports_are_read_and_unreadable_hops_end_the_walk() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        let resolved = |xff: &str| resolve(peer, &headers(xff), &trusted).to_string();
        // A proxy that writes the client's port: the client's forged entry
        // further left does not win.
        assert_eq!(resolved("6.6.6.6, 1.2.3.4:5678"), "1.2.3.4");
        assert_eq!(resolved("6.6.6.6, [2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(resolved("6.6.6.6, [2001:db8::1]"), "2001:db8::1");
        // A hop that is no address: the nearest trusted hop, else the peer.
        assert_eq!(resolved("6.6.6.6, unknown, 10.0.0.7"), "10.0.0.7");
        assert_eq!(resolved("6.6.6.6, unknown"), "10.0.0.5");
        // Every hop trusted: the left-most.
        assert_eq!(resolved("10.0.0.8, 10.0.0.7"), "10.0.0.8");
        // A byte that is not ASCII in the client's part of the line a proxy
        // appended to spoils that hop only, not the proxy's.
        let mut spoiled = HeaderMap::new();
        spoiled.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff, 1.2.3.4").unwrap(),
        );
        assert_eq!(resolve(peer, &spoiled, &trusted).to_string(), "1.2.3.4");
        spoiled.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"1.2.3.4, 10.0.0.\xe9").unwrap(),
        );
        assert_eq!(resolve(peer, &spoiled, &trusted), peer);
    }
}
