//! The receiver-address rule: a webhook or Slack URL must be `https` and reach only public
//! addresses — no loopback, link-local, private (RFC 1918, unique-local), unspecified, multicast,
//! broadcast, shared (CGNAT) or documentation range — unless the operator sets
//! `ZIXLY_WEBHOOK_ALLOW_PRIVATE` (a receiver on the same network, tests). Checked when a channel
//! is created (literal addresses and `localhost`) and again at every delivery after DNS
//! resolution, on the addresses the request then connects to (pinned, so a DNS answer that
//! changes between the check and the connection cannot point it elsewhere).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// Why an address is refused. The text names the rule, never a secret (a Slack URL's path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("not a valid URL")]
    Invalid,
    #[error("the URL must use https")]
    NotHttps,
    #[error("the URL must name a host")]
    NoHost,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("the receiver's address {0} is not public (loopback, private, link-local, multicast or unspecified)")]
    NotPublic(IpAddr),
    #[error("the receiver's host name did not resolve")]
    Unresolved,
}

/// Parses and checks a receiver URL without DNS (channel creation).
pub fn check_url(text: &str, allow_private: bool) -> Result<Url, AddressError> {
    let url = Url::parse(text.trim()).map_err(|_| AddressError::Invalid)?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err(AddressError::NotHttps),
        _ => return Err(AddressError::Invalid),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AddressError::Credentials);
    }
    let ip = match url.host() {
        None => return Err(AddressError::NoHost),
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if !allow_private && (d == "localhost" || d.ends_with(".localhost")) {
                return Err(AddressError::NotPublic(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            }
            None
        }
    };
    if let Some(ip) = ip {
        check_ip(ip, allow_private)?;
    }
    Ok(url)
}

/// Resolves the URL's host and checks every address it resolves to (delivery).
pub async fn resolve_checked(
    url: &Url,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, AddressError> {
    let host = url.host_str().ok_or(AddressError::NoHost)?;
    let port = url.port_or_known_default().ok_or(AddressError::Invalid)?;
    // `host_str` keeps an IPv6 literal's brackets; lookup_host wants it bare.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| AddressError::Unresolved)?
        .collect();
    if addrs.is_empty() {
        return Err(AddressError::Unresolved);
    }
    for a in &addrs {
        check_ip(a.ip(), allow_private)?;
    }
    Ok(addrs)
}

/// The rule on one address.
pub fn check_ip(ip: IpAddr, allow_private: bool) -> Result<(), AddressError> {
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(AddressError::NotPublic(ip))
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4-mapped or -compatible address reaches the IPv4 host.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT): inside a provider's network.
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 (protocol assignments), 198.18.0.0/15 (benchmarking), 240/4 (reserved).
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // ::/96 IPv4-compatible (deprecated): treat as the IPv4 address it embeds.
        || (ip.segments()[..6].iter().all(|s| *s == 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_public_targets_and_plain_http() {
        for url in [
            "https://127.0.0.1/hook",
            "https://localhost/hook",
            "https://10.1.2.3/",
            "https://192.168.0.10/",
            "https://172.16.5.5/",
            "https://169.254.169.254/latest/meta-data",
            "https://0.0.0.0/",
            "https://224.0.0.1/",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::]/",
        ] {
            assert!(
                matches!(check_url(url, false), Err(AddressError::NotPublic(_))),
                "{url} must be refused"
            );
            assert!(
                check_url(url, true).is_ok(),
                "{url} allowed with allow-private"
            );
        }
        assert_eq!(
            check_url("http://example.com/", false),
            Err(AddressError::NotHttps)
        );
        assert!(check_url("http://example.com/", true).is_ok());
        assert_eq!(
            check_url("ftp://example.com/", true),
            Err(AddressError::Invalid)
        );
        assert_eq!(
            check_url("https://u:p@example.com/", false),
            Err(AddressError::Credentials)
        );
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("https://93.184.215.14/hook", false).is_ok());
    }

    #[tokio::test]
    async fn resolution_is_checked() {
        let url = Url::parse("https://localhost:9/").unwrap();
        assert!(matches!(
            resolve_checked(&url, false).await,
            Err(AddressError::NotPublic(_))
        ));
        assert!(resolve_checked(&url, true).await.is_ok());
    }
}
