//! Which browser origins may open a WebSocket with a user's cookie, and
//! whether cookies are `Secure`: both follow the configured public URL
//! (`CAMPUS_PUBLIC_URL`), never the request's `Host` header, which a
//! DNS-rebinding page controls.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderValue;

use crate::config::ConfigError;

/// A web origin, `scheme://host[:port]`, normalized: lower case, the
/// scheme's default port left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// Parse an origin as a browser sends it in `Origin` (no path).
    pub fn parse(s: &str) -> Option<Origin> {
        parse(s, false)
    }

    /// Parse a configured URL: an origin, optionally followed by `/`.
    fn parse_config(s: &str) -> Option<Origin> {
        parse(s, true)
    }

    /// True for `https://` origins.
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }

    /// The origin as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse(s: &str, allow_slash: bool) -> Option<Origin> {
    let s = s.trim();
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let rest = if allow_slash {
        rest.strip_suffix('/').unwrap_or(rest)
    } else {
        rest
    };
    // Nothing after the authority: no path, query, fragment or credentials.
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', '\\']) {
        return None;
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        addr.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{}]", addr.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !valid {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => default_port,
        Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|p| *p != 0)?
        }
        Some(_) => return None,
    };
    Some(Origin(if port == default_port {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    }))
}

/// The browser-facing rules derived from the configuration.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// Origins whose pages may open a WebSocket (the public URL first).
    allowed: Vec<Origin>,
    /// Cookies get `Secure` (the public URL is `https://`).
    secure_cookies: bool,
}

impl OriginPolicy {
    /// From `CAMPUS_PUBLIC_URL` and `CAMPUS_ALLOWED_ORIGINS`; without a public
    /// URL, the origins of the address the server is bound to
    /// (`http://127.0.0.1:PORT` and `http://localhost:PORT` on loopback or
    /// the unspecified address).
    pub fn new(
        public_url: Option<&str>,
        allowed: &[String],
        bound: SocketAddr,
    ) -> Result<OriginPolicy, ConfigError> {
        let mut origins = Vec::new();
        let public = match public_url.map(str::trim).filter(|s| !s.is_empty()) {
            Some(url) => Some(Origin::parse_config(url).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "CAMPUS_PUBLIC_URL {url:?} is not an origin like https://ide.uni.edu or http://10.0.0.5:8080 (scheme, host and port only: Campus is served at the root)"
                ))
            })?),
            None => None,
        };
        match &public {
            Some(p) => origins.push(p.clone()),
            None => origins.extend(default_origins(bound)),
        }
        for a in allowed.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
            let o = Origin::parse_config(a).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "CAMPUS_ALLOWED_ORIGINS entry {a:?} is not an origin like https://ide.uni.edu"
                ))
            })?;
            if !origins.contains(&o) {
                origins.push(o);
            }
        }
        Ok(OriginPolicy {
            secure_cookies: public.as_ref().is_some_and(Origin::is_https),
            allowed: origins,
        })
    }

    /// May a request with this `Origin` header use a cookie? Browsers always
    /// send `Origin` on WebSocket handshakes; clients that send none (the
    /// CLI, the load generator) cannot ride a browser's cookie and are let
    /// through. `null` and malformed origins are refused.
    pub fn allows(&self, origin: Option<&HeaderValue>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        origin
            .to_str()
            .ok()
            .and_then(Origin::parse)
            .is_some_and(|o| self.allowed.contains(&o))
    }

    /// Whether cookies are set with `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }

    /// The allowed origins (for logs and messages).
    pub fn origins(&self) -> &[Origin] {
        &self.allowed
    }
}

/// The development default: what a browser on this machine uses for the
/// bound address.
fn default_origins(bound: SocketAddr) -> Vec<Origin> {
    let port = bound.port();
    let local = |host: &str| Origin::parse(&format!("http://{host}:{port}"));
    let ip = bound.ip();
    let mut out = Vec::new();
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() || v4.is_unspecified() => {
            out.extend(local("127.0.0.1"));
            out.extend(local("localhost"));
        }
        IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified() => {
            out.extend(local("[::1]"));
            out.extend(local("localhost"));
            if v6.is_unspecified() {
                out.extend(local("127.0.0.1"));
            }
        }
        IpAddr::V4(v4) => out.extend(local(&v4.to_string())),
        IpAddr::V6(v6) => out.extend(local(&format!("[{v6}]"))),
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn origins_are_normalized() {
        let o = |s| Origin::parse(s).map(|o| o.0);
        assert_eq!(o("HTTPS://IDE.Uni.EDU"), Some("https://ide.uni.edu".into()));
        assert_eq!(
            o("https://ide.uni.edu:443"),
            Some("https://ide.uni.edu".into())
        );
        assert_eq!(
            o("http://ide.uni.edu:443"),
            Some("http://ide.uni.edu:443".into())
        );
        assert_eq!(o("http://[::1]:8080"), Some("http://[::1]:8080".into()));
        assert_eq!(o("http://127.0.0.1:80"), Some("http://127.0.0.1".into()));
        for bad in [
            "null",
            "ide.uni.edu",
            "ftp://ide.uni.edu",
            "https://ide.uni.edu/",
            "https://ide.uni.edu/path",
            "https://user@ide.uni.edu",
            "https://ide.uni.edu:0",
            "https://ide.uni.edu:99999",
            "https://ide.uni.edu:",
            "https://",
            "https://ide uni",
            "http://[::1",
        ] {
            assert_eq!(o(bad), None, "{bad}");
        }
        assert!(Origin::parse_config("https://ide.uni.edu/").is_some());
    }

    #[test]
    fn the_public_url_decides_not_the_host() {
        let bound: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let p = OriginPolicy::new(Some("https://ide.uni.edu/"), &[], bound).unwrap();
        assert!(p.allows(Some(&hv("https://ide.uni.edu"))));
        assert!(p.allows(None), "non-browser clients send no Origin");
        // A plain-http page is not the https origin.
        assert!(!p.allows(Some(&hv("http://ide.uni.edu"))));
        // A DNS-rebinding page: its Origin matches its own Host, not ours.
        assert!(!p.allows(Some(&hv("http://evil.example"))));
        assert!(!p.allows(Some(&hv("null"))));
        // Without a public URL the listen address is our origin, not 127.0.0.1 on another port.
        assert!(!p.allows(Some(&hv("http://127.0.0.1:8080"))));
        assert!(p.secure_cookies());
    }

    #[test]
    fn the_development_default_is_the_bound_address() {
        let p = OriginPolicy::new(None, &[], "127.0.0.1:9000".parse().unwrap()).unwrap();
        assert!(p.allows(Some(&hv("http://127.0.0.1:9000"))));
        assert!(p.allows(Some(&hv("http://localhost:9000"))));
        assert!(!p.allows(Some(&hv("https://127.0.0.1:9000"))));
        assert!(!p.allows(Some(&hv("http://127.0.0.1:9001"))));
        assert!(!p.secure_cookies());
        let any = OriginPolicy::new(None, &[], "0.0.0.0:80".parse().unwrap()).unwrap();
        assert!(any.allows(Some(&hv("http://localhost"))));
        assert!(!any.allows(Some(&hv("http://192.168.1.20"))));
        let lan = OriginPolicy::new(None, &[], "192.168.1.20:8080".parse().unwrap()).unwrap();
        assert!(lan.allows(Some(&hv("http://192.168.1.20:8080"))));
    }

    #[test]
    fn allowed_origins_add_to_the_public_one_and_bad_ones_are_refused() {
        let bound: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let p = OriginPolicy::new(
            Some("https://ide.uni.edu"),
            &["https://mirror.uni.edu".into(), " ".into()],
            bound,
        )
        .unwrap();
        assert!(p.allows(Some(&hv("https://mirror.uni.edu"))));
        assert_eq!(p.origins().len(), 2);
        assert!(OriginPolicy::new(Some("ide.uni.edu"), &[], bound).is_err());
        assert!(OriginPolicy::new(Some("https://ide.uni.edu/campus"), &[], bound).is_err());
        assert!(OriginPolicy::new(None, &["*".into()], bound).is_err());
    }
}
