//! The real client IP: the TCP peer, unless the peer is a trusted proxy
//! (`TOLLGATE_TRUSTED_PROXIES`), in which case `X-Forwarded-For` is read from the
//! right, skipping trusted hops. A layer ([`layer`]) stores it on every request, so the
//! gateway's limits, key allowlists, audit events and login throttles agree.

use std::{
    net::{IpAddr, SocketAddr},
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

pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
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
}
