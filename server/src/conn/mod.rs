//! Connection limits: what one client, with or without an account, may hold
//! of the server's connections (and so of its file descriptors).
//!
//! Every accepted TCP connection is admitted here first ([`ConnLimits::admit`])
//! and holds a [`ConnTicket`] for as long as its socket lives, also after a
//! WebSocket upgrade (the ticket travels inside the socket's I/O object, see
//! [`serve`]). A connection starts *unauthenticated* and becomes
//! *authenticated* when a request on it proves a user (the session cookie or
//! token, or a successful login) through its [`ConnHandle`]:
//!
//! - Unauthenticated connections are capped per client address (IPv6: per
//!   /64) and in total. At a cap the new connection is admitted and the
//!   oldest unauthenticated one (of that address, or of all) is closed,
//!   preferring one with no request being handled: a classmate behind the
//!   same NAT address as an attacker still gets in, and the attacker's
//!   connections are the ones that go.
//! - Authenticated connections are not limited per address (a classroom of
//!   300 shares one), only per user: [`ConnArgs::http_connections_per_user`]
//!   HTTP connections (more stay counted as unauthenticated) and
//!   [`ConnArgs::ws_per_user`] WebSockets (one more closes the user's oldest,
//!   close code 4012).
//! - All connections together stay below a cap derived from the open-files
//!   limit minus a reserve kept for the database, workspaces and runs. At the
//!   cap an unauthenticated connection makes room; if every connection is
//!   authenticated the new one is answered `503 busy` and closed.
//!
//! Timeouts (headers, idle before and after authentication) are applied by
//! [`serve`], which asks the connection's [`ConnShared`] how long it has been idle.

pub mod serve;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use campus_protocol::ErrorCode;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, ConnArgs};
use crate::error::AppError;

/// Fewest client connections a configuration may leave (below this the
/// descriptor limit is too low to serve a class: raise `ulimit -n`).
const MIN_CONNECTIONS: usize = 64;
/// Eviction looks at this many of the oldest candidates for one with no
/// request being handled before taking the oldest.
const EVICTION_SCAN: usize = 64;

/// The client address a per-address cap counts: an IPv4 address, or the /64
/// an IPv6 address is in (one subscriber's whole prefix). IPv4-mapped IPv6
/// addresses count as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrKey(IpAddr);

impl AddrKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> AddrKey {
        match ip {
            IpAddr::V4(v4) => AddrKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    AddrKey(IpAddr::V6(bits.into()))
                }
            },
        }
    }
}

impl std::fmt::Display for AddrKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The limits in force, resolved from [`ConnArgs`] and the descriptor limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnConfig {
    /// Most connections in total.
    pub max_connections: usize,
    /// Most unauthenticated connections in total.
    pub max_unauth: usize,
    /// Most unauthenticated connections per address.
    pub max_unauth_per_address: usize,
    /// WebSockets per user.
    pub ws_per_user: usize,
    /// Authenticated HTTP connections per user.
    pub http_per_user: usize,
    /// Time for a request's headers (and an idle keep-alive connection).
    pub header_read_timeout: Duration,
    /// Idle limit of an unauthenticated connection.
    pub unauth_idle: Duration,
    /// Idle limit of an authenticated HTTP connection.
    pub idle: Duration,
}

impl ConnConfig {
    /// Resolve `args` against the open-files limit `nofile`: the connection cap
    /// defaults to half of `nofile − reserve` (each connection may bring its
    /// user's workspace and run descriptors with it), and an explicit one may
    /// not eat into the reserve.
    pub fn resolve(args: &ConnArgs, nofile: u64) -> Result<ConnConfig, ConfigError> {
        // The reserve takes at most half the limit: a host (or container)
        // whose limit is the common 1,024 still serves a small class instead
        // of refusing to start.
        let reserve = args.fd_reserve.min(nofile / 2);
        let available = usize::try_from(nofile.saturating_sub(reserve)).unwrap_or(usize::MAX);
        let max_connections = match args.max_connections {
            0 => available / 2,
            n if n > available => {
                return Err(ConfigError::Invalid(format!(
                    "CAMPUS_MAX_CONNECTIONS is {n}, but the open-files limit ({nofile}) minus the descriptor reserve ({reserve}) leaves {available}: raise the limit (ulimit -n, LimitNOFILE=) or lower one of them"
                )))
            }
            n => n,
        };
        if max_connections < MIN_CONNECTIONS {
            return Err(ConfigError::Invalid(format!(
                "the open-files limit ({nofile}) minus the descriptor reserve ({reserve}) leaves room for only {max_connections} connections (at least {MIN_CONNECTIONS}): raise the limit (ulimit -n, LimitNOFILE=)"
            )));
        }
        let max_unauth = match args.max_unauth_connections {
            0 => max_connections / 4,
            n => n.min(max_connections),
        };
        let secs = |name: &str, v: u64| {
            if v == 0 {
                Err(ConfigError::Invalid(format!("{name} must be at least 1")))
            } else {
                Ok(Duration::from_secs(v))
            }
        };
        let at_least_one = |name: &str, v: usize| {
            if v == 0 {
                Err(ConfigError::Invalid(format!("{name} must be at least 1")))
            } else {
                Ok(v)
            }
        };
        Ok(ConnConfig {
            max_connections,
            max_unauth: at_least_one("CAMPUS_MAX_UNAUTH_CONNECTIONS", max_unauth)?,
            max_unauth_per_address: at_least_one(
                "CAMPUS_MAX_UNAUTH_PER_ADDRESS",
                args.max_unauth_per_address,
            )?
            .min(max_unauth),
            ws_per_user: at_least_one("CAMPUS_WS_PER_USER", args.ws_per_user)?,
            http_per_user: at_least_one(
                "CAMPUS_HTTP_CONNECTIONS_PER_USER",
                args.http_connections_per_user,
            )?,
            header_read_timeout: secs(
                "CAMPUS_HEADER_READ_TIMEOUT_SECS",
                args.header_read_timeout_secs,
            )?,
            unauth_idle: secs("CAMPUS_UNAUTH_IDLE_SECS", args.unauth_idle_secs)?,
            idle: secs("CAMPUS_IDLE_SECS", args.idle_secs)?,
        })
    }
}

/// The open-files soft limit of this process.
pub fn open_files_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft)
}

/// What a connection counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// No request on it has proved a user yet.
    Unauth,
    /// An HTTP connection of this user.
    Http(i64),
    /// A WebSocket (upgraded or upgrading) of this user.
    Ws(i64),
    /// Told to close; its socket is not released yet. `ws_of`: it was a
    /// WebSocket of that user.
    Dying { ws_of: Option<i64> },
}

/// Per-connection state shared by its serving task, its requests and the limits.
#[derive(Debug)]
pub struct ConnShared {
    id: u64,
    peer: SocketAddr,
    epoch: Instant,
    /// Cancelled when the connection must close (evicted, replaced).
    kill: CancellationToken,
    /// Requests being handled (from headers parsed to response head).
    busy: AtomicUsize,
    /// Milliseconds since `epoch` of the last byte read or written.
    last_io_ms: AtomicU64,
    authenticated: AtomicBool,
}

impl ConnShared {
    /// Note that bytes moved.
    pub fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since bytes last moved.
    pub fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed();
        now.saturating_sub(Duration::from_millis(
            self.last_io_ms.load(Ordering::Relaxed),
        ))
    }

    /// True while a request on it is being handled.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0
    }

    /// True once a request on it proved a user.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Relaxed)
    }

    /// Resolves when the connection must close.
    pub async fn killed(&self) {
        self.kill.cancelled().await
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

/// Counts a request as being handled while alive.
#[derive(Debug)]
pub struct BusyGuard(Arc<ConnShared>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

#[derive(Debug)]
struct Entry {
    addr: AddrKey,
    class: Class,
    shared: Arc<ConnShared>,
}

#[derive(Debug, Default)]
struct PerUser {
    http: usize,
    /// Live WebSockets, oldest first (ids grow with time).
    ws: BTreeSet<u64>,
    /// WebSockets told to close whose sockets are not released yet.
    ws_dying: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// Sockets held (tickets alive).
    total: usize,
    /// Of those, told to close.
    dying: usize,
    conns: HashMap<u64, Entry>,
    /// Unauthenticated connections, oldest first.
    unauth: BTreeSet<u64>,
    per_addr: HashMap<AddrKey, BTreeSet<u64>>,
    users: HashMap<i64, PerUser>,
    evicted: u64,
    refused: u64,
    replaced: u64,
}

/// Counts of the connections held (for `/readyz`, logs and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConnStats {
    /// Sockets held.
    pub total: usize,
    /// Unauthenticated connections.
    pub unauthenticated: usize,
    /// Authenticated HTTP connections.
    pub http: usize,
    /// WebSockets.
    pub websockets: usize,
    /// Told to close, not released yet.
    pub closing: usize,
    /// Unauthenticated connections closed to make room, since start.
    pub evicted: u64,
    /// Connections refused at the cap, since start.
    pub refused: u64,
    /// WebSockets closed for a newer one of the same user, since start.
    pub replaced: u64,
    /// Failed `accept` calls (e.g. `EMFILE`), since start.
    pub accept_errors: u64,
    /// The connection cap.
    pub max_connections: usize,
}

/// The connection-limits service (one per server).
#[derive(Debug)]
pub struct ConnLimits {
    cfg: ConnConfig,
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    epoch: Instant,
    accept_errors: AtomicU64,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every connection slot is held by an authenticated connection.
    AtCapacity,
}

/// Held by a connection's socket for its whole life; releases the slot on drop.
#[derive(Debug)]
pub struct ConnTicket {
    limits: Arc<ConnLimits>,
    shared: Arc<ConnShared>,
}

/// A request's view of its connection (a request extension).
#[derive(Debug, Clone)]
pub struct ConnHandle {
    limits: Arc<ConnLimits>,
    shared: Arc<ConnShared>,
}

/// A WebSocket's place among its user's: closed (`evicted`) when the user
/// opens more than the cap.
#[derive(Debug)]
pub struct WsSlot {
    shared: Option<Arc<ConnShared>>,
}

impl ConnLimits {
    /// Limits as resolved.
    pub fn new(cfg: ConnConfig) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            cfg,
            inner: Mutex::new(Inner::default()),
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
            accept_errors: AtomicU64::new(0),
        })
    }

    /// The limits in force.
    pub fn config(&self) -> &ConnConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves counts that are
        // still consistent enough to serve on (every update is a few lines).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hard bound on sockets held while evicted ones are still closing.
    fn hard_cap(&self) -> usize {
        self.cfg.max_connections + (self.cfg.max_connections / 8).max(16)
    }

    /// Admit a new connection from `peer`, making room by closing the oldest
    /// unauthenticated connection where a cap is reached.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<ConnTicket, Refused> {
        let addr = AddrKey::of(peer.ip());
        let mut g = self.lock();
        let inner = &mut *g;
        if inner.total >= self.hard_cap()
            || (inner.total - inner.dying >= self.cfg.max_connections && !evict_oldest(inner, None))
        {
            inner.refused += 1;
            return Err(Refused::AtCapacity);
        }
        if inner.unauth.len() >= self.cfg.max_unauth {
            evict_oldest(inner, None);
        }
        if inner
            .per_addr
            .get(&addr)
            .is_some_and(|s| s.len() >= self.cfg.max_unauth_per_address)
        {
            evict_oldest(inner, Some(addr));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(ConnShared {
            id,
            peer,
            epoch: self.epoch,
            kill: CancellationToken::new(),
            busy: AtomicUsize::new(0),
            last_io_ms: AtomicU64::new(0),
            authenticated: AtomicBool::new(false),
        });
        shared.touch();
        inner.conns.insert(
            id,
            Entry {
                addr,
                class: Class::Unauth,
                shared: Arc::clone(&shared),
            },
        );
        inner.unauth.insert(id);
        inner.per_addr.entry(addr).or_default().insert(id);
        inner.total += 1;
        Ok(ConnTicket {
            limits: Arc::clone(self),
            shared,
        })
    }

    /// Connection counts now.
    pub fn stats(&self) -> ConnStats {
        let g = self.lock();
        let mut s = ConnStats {
            total: g.total,
            unauthenticated: g.unauth.len(),
            closing: g.dying,
            evicted: g.evicted,
            refused: g.refused,
            replaced: g.replaced,
            accept_errors: self.accept_errors.load(Ordering::Relaxed),
            max_connections: self.cfg.max_connections,
            ..ConnStats::default()
        };
        for u in g.users.values() {
            s.http += u.http;
            s.websockets += u.ws.len();
        }
        s
    }

    /// Count a failed `accept`.
    pub fn note_accept_error(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Unauthenticated connections of `ip`'s address now.
    pub fn unauth_of(&self, ip: IpAddr) -> usize {
        self.lock()
            .per_addr
            .get(&AddrKey::of(ip))
            .map_or(0, BTreeSet::len)
    }

    /// Live WebSockets of `user_id` now.
    pub fn websockets_of(&self, user_id: i64) -> usize {
        self.lock().users.get(&user_id).map_or(0, |u| u.ws.len())
    }

    fn authenticate(&self, id: u64, user_id: i64) {
        let mut g = self.lock();
        let inner = &mut *g;
        let Some(entry) = inner.conns.get_mut(&id) else {
            return;
        };
        if entry.class != Class::Unauth {
            return;
        }
        let user = inner.users.entry(user_id).or_default();
        if user.http >= self.cfg.http_per_user {
            // One account's connections beyond its share stay under the
            // unauthenticated caps (and their shorter idle limit).
            return;
        }
        user.http += 1;
        entry.class = Class::Http(user_id);
        entry.shared.authenticated.store(true, Ordering::Relaxed);
        let addr = entry.addr;
        forget_unauth(inner, id, addr);
    }

    fn open_ws(&self, id: u64, user_id: i64) -> Result<(), AppError> {
        let mut g = self.lock();
        let inner = &mut *g;
        let Some(entry) = inner.conns.get(&id) else {
            return Ok(());
        };
        let (class, addr) = (entry.class, entry.addr);
        if matches!(class, Class::Dying { .. }) {
            // Closed to make room while its upgrade was being handled: the
            // socket sees its kill at once and goes.
            return Ok(());
        }
        let user = inner.users.entry(user_id).or_default();
        if user.ws.len() >= self.cfg.ws_per_user && user.ws_dying >= self.cfg.ws_per_user {
            // The WebSockets this user replaced have not closed yet (a client
            // opening them faster than it lets them go): wait for them.
            let mut e = AppError::new(
                ErrorCode::RateLimited,
                "too many connections of this account are still closing; try again in a second",
            );
            e.retry_after = Some(Duration::from_secs(1));
            return Err(e);
        }
        let oldest = if user.ws.len() >= self.cfg.ws_per_user {
            user.ws.pop_first()
        } else {
            None
        };
        user.ws.insert(id);
        if let Some(old) = oldest {
            user.ws_dying += 1;
            inner.dying += 1;
            inner.replaced += 1;
            if let Some(e) = inner.conns.get_mut(&old) {
                e.class = Class::Dying {
                    ws_of: Some(user_id),
                };
                e.shared.kill.cancel();
            }
        }
        match class {
            Class::Unauth => forget_unauth(inner, id, addr),
            Class::Http(u) => {
                if let Some(pu) = inner.users.get_mut(&u) {
                    pu.http = pu.http.saturating_sub(1);
                }
            }
            Class::Ws(_) | Class::Dying { .. } => {}
        }
        if let Some(e) = inner.conns.get_mut(&id) {
            e.class = Class::Ws(user_id);
            e.shared.authenticated.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn release(&self, id: u64) {
        let mut g = self.lock();
        let inner = &mut *g;
        let Some(entry) = inner.conns.remove(&id) else {
            return;
        };
        inner.total = inner.total.saturating_sub(1);
        match entry.class {
            Class::Unauth => forget_unauth(inner, id, entry.addr),
            Class::Http(u) => {
                if let Some(pu) = inner.users.get_mut(&u) {
                    pu.http = pu.http.saturating_sub(1);
                }
                drop_user_if_empty(inner, u);
            }
            Class::Ws(u) => {
                if let Some(pu) = inner.users.get_mut(&u) {
                    pu.ws.remove(&id);
                }
                drop_user_if_empty(inner, u);
            }
            Class::Dying { ws_of } => {
                inner.dying = inner.dying.saturating_sub(1);
                if let Some(u) = ws_of {
                    if let Some(pu) = inner.users.get_mut(&u) {
                        pu.ws_dying = pu.ws_dying.saturating_sub(1);
                    }
                    drop_user_if_empty(inner, u);
                }
            }
        }
    }
}

/// Remove `id` from the unauthenticated sets.
fn forget_unauth(inner: &mut Inner, id: u64, addr: AddrKey) {
    inner.unauth.remove(&id);
    if let Some(set) = inner.per_addr.get_mut(&addr) {
        set.remove(&id);
        if set.is_empty() {
            inner.per_addr.remove(&addr);
        }
    }
}

fn drop_user_if_empty(inner: &mut Inner, user_id: i64) {
    if inner
        .users
        .get(&user_id)
        .is_some_and(|u| u.http == 0 && u.ws.is_empty() && u.ws_dying == 0)
    {
        inner.users.remove(&user_id);
    }
}

/// Close the oldest unauthenticated connection (of `addr`, or of all),
/// preferring one with no request being handled. False if there is none.
fn evict_oldest(inner: &mut Inner, addr: Option<AddrKey>) -> bool {
    let candidates: Vec<u64> = match addr {
        Some(a) => match inner.per_addr.get(&a) {
            Some(set) => set.iter().take(EVICTION_SCAN).copied().collect(),
            None => return false,
        },
        None => inner.unauth.iter().take(EVICTION_SCAN).copied().collect(),
    };
    let idle = candidates
        .iter()
        .copied()
        .find(|id| inner.conns.get(id).is_some_and(|e| !e.shared.is_busy()));
    let Some(victim) = idle.or_else(|| candidates.first().copied()) else {
        return false;
    };
    let Some(entry) = inner.conns.get_mut(&victim) else {
        return false;
    };
    entry.class = Class::Dying { ws_of: None };
    entry.shared.kill.cancel();
    let addr = entry.addr;
    tracing::debug!(peer = %entry.shared.peer, "closed the oldest unauthenticated connection to make room");
    inner.dying += 1;
    inner.evicted += 1;
    forget_unauth(inner, victim, addr);
    true
}

impl ConnTicket {
    /// The state shared with the connection's requests.
    pub fn shared(&self) -> &Arc<ConnShared> {
        &self.shared
    }

    /// A handle for the connection's requests.
    pub fn handle(&self) -> ConnHandle {
        ConnHandle {
            limits: Arc::clone(&self.limits),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for ConnTicket {
    fn drop(&mut self) {
        self.limits.release(self.shared.id);
    }
}

impl ConnHandle {
    /// A request on this connection proved `user_id`: it no longer counts
    /// against the unauthenticated caps (within the user's share).
    pub fn authenticated(&self, user_id: i64) {
        self.shared.touch();
        if self.shared.is_authenticated() {
            return;
        }
        self.limits.authenticate(self.shared.id, user_id);
    }

    /// This connection becomes a WebSocket of `user_id`. Closes the user's
    /// oldest WebSocket when the user is at the cap.
    pub fn websocket(&self, user_id: i64) -> Result<WsSlot, AppError> {
        self.limits.open_ws(self.shared.id, user_id)?;
        Ok(WsSlot {
            shared: Some(Arc::clone(&self.shared)),
        })
    }

    /// Count a request as being handled until the guard drops.
    pub fn busy(&self) -> BusyGuard {
        self.shared.busy.fetch_add(1, Ordering::Relaxed);
        self.shared.touch();
        BusyGuard(Arc::clone(&self.shared))
    }
}

impl WsSlot {
    /// A slot outside any limits (a connection not served by [`serve`]).
    pub fn untracked() -> WsSlot {
        WsSlot { shared: None }
    }

    /// Resolves when a newer WebSocket of the same user replaced this one.
    pub async fn replaced(&self) {
        match &self.shared {
            Some(s) => s.killed().await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg() -> ConnConfig {
        ConnConfig {
            max_connections: 10,
            max_unauth: 6,
            max_unauth_per_address: 3,
            ws_per_user: 2,
            http_per_user: 2,
            header_read_timeout: Duration::from_secs(1),
            unauth_idle: Duration::from_secs(1),
            idle: Duration::from_secs(1),
        }
    }

    fn peer(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], port))
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddrKey::of(a), AddrKey::of(b));
        assert_ne!(AddrKey::of(a), AddrKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            AddrKey::of(mapped),
            AddrKey::of("192.0.2.7".parse().unwrap())
        );
        assert_eq!(AddrKey::of(a).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn per_address_cap_closes_that_address_oldest_idle_connection() {
        let limits = ConnLimits::new(cfg());
        let t: Vec<ConnTicket> = (0..3).map(|i| limits.admit(peer(1, i)).unwrap()).collect();
        // The oldest is handling a request: the next oldest goes instead.
        let _busy = t[0].handle().busy();
        let other = limits.admit(peer(2, 1)).unwrap();
        let fourth = limits.admit(peer(1, 9)).unwrap();
        assert!(!t[0].shared.kill.is_cancelled());
        assert!(
            t[1].shared.kill.is_cancelled(),
            "the oldest idle one is closed"
        );
        assert!(!t[2].shared.kill.is_cancelled());
        assert!(
            !other.shared.kill.is_cancelled(),
            "another address is untouched"
        );
        assert_eq!(limits.unauth_of(peer(1, 0).ip()), 3);
        let s = limits.stats();
        assert_eq!(
            (s.total, s.unauthenticated, s.closing, s.evicted),
            (5, 4, 1, 1)
        );
        drop(t);
        drop(fourth);
        drop(other);
        let s = limits.stats();
        assert_eq!((s.total, s.unauthenticated, s.closing), (0, 0, 0));
    }

    #[test]
    fn authenticated_connections_are_not_limited_per_address() {
        let limits = ConnLimits::new(cfg());
        let mut held = Vec::new();
        for user in 0..5 {
            let t = limits.admit(peer(1, user as u16)).unwrap();
            t.handle().authenticated(user);
            held.push(t);
        }
        // Five authenticated from one address (per-address cap 3), none closed.
        assert!(held.iter().all(|t| !t.shared.kill.is_cancelled()));
        assert_eq!(limits.unauth_of(peer(1, 0).ip()), 0);
        assert_eq!(limits.stats().http, 5);
        // A user's HTTP connections beyond its share stay unauthenticated.
        let extra: Vec<ConnTicket> = (0..3).map(|i| limits.admit(peer(3, i)).unwrap()).collect();
        for t in &extra {
            t.handle().authenticated(42);
        }
        assert_eq!(limits.stats().http, 7);
        assert_eq!(limits.unauth_of(peer(3, 0).ip()), 1);
        assert!(!extra[2].shared.is_authenticated());
    }

    #[test]
    fn total_cap_evicts_unauthenticated_first_then_refuses() {
        let limits = ConnLimits::new(cfg());
        let mut authed = Vec::new();
        for user in 0..8 {
            let t = limits.admit(peer(user as u8, 1)).unwrap();
            t.handle().authenticated(user);
            authed.push(t);
        }
        let u1 = limits.admit(peer(100, 1)).unwrap();
        let u2 = limits.admit(peer(101, 1)).unwrap();
        // Full (10): the next one closes the oldest unauthenticated connection.
        let u3 = limits.admit(peer(102, 1)).unwrap();
        assert!(u1.shared.kill.is_cancelled());
        assert!(!u2.shared.kill.is_cancelled());
        drop(u1);
        u2.handle().authenticated(8);
        u3.handle().authenticated(9);
        // All ten authenticated: refused.
        assert_eq!(limits.admit(peer(103, 1)).unwrap_err(), Refused::AtCapacity);
        assert_eq!(limits.stats().refused, 1);
        drop(u2);
        assert!(limits.admit(peer(103, 1)).is_ok());
    }

    #[test]
    fn a_users_extra_websocket_closes_its_oldest() {
        let limits = ConnLimits::new(cfg());
        let t: Vec<ConnTicket> = (0..4).map(|i| limits.admit(peer(i, 1)).unwrap()).collect();
        let _s0 = t[0].handle().websocket(7).unwrap();
        let _s1 = t[1].handle().websocket(7).unwrap();
        assert_eq!(limits.websockets_of(7), 2);
        let _s2 = t[2].handle().websocket(7).unwrap();
        assert!(t[0].shared.kill.is_cancelled(), "the oldest is replaced");
        assert!(!t[1].shared.kill.is_cancelled());
        assert_eq!(limits.websockets_of(7), 2);
        assert_eq!(limits.stats().replaced, 1);
        // Another user is unaffected.
        let other = limits.admit(peer(20, 1)).unwrap();
        let _o = other.handle().websocket(8).unwrap();
        assert!(!t[1].shared.kill.is_cancelled());
        drop(t);
        drop(other);
        let s = limits.stats();
        assert_eq!((s.total, s.websockets, s.closing), (0, 0, 0));
    }

    #[test]
    fn replaced_websockets_that_do_not_close_stop_new_ones() {
        let limits = ConnLimits::new(cfg());
        let t: Vec<ConnTicket> = (0..6).map(|i| limits.admit(peer(i, 1)).unwrap()).collect();
        for c in &t[..4] {
            c.handle().websocket(7).unwrap();
        }
        // Two live, two replaced and still open: the fifth must wait.
        let e = t[4].handle().websocket(7).unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert!(e.retry_after.is_some());
        let mut t = t;
        t.remove(0); // a replaced one closes
        t[3].handle().websocket(7).unwrap();
    }

    #[test]
    fn caps_come_from_the_descriptor_limit() {
        let args = ConnArgs {
            max_connections: 0,
            fd_reserve: 1024,
            max_unauth_connections: 0,
            max_unauth_per_address: 256,
            header_read_timeout_secs: 10,
            unauth_idle_secs: 10,
            idle_secs: 120,
            ws_per_user: 8,
            http_connections_per_user: 32,
        };
        let c = ConnConfig::resolve(&args, 20_000).unwrap();
        assert_eq!(c.max_connections, (20_000 - 1024) / 2);
        assert_eq!(c.max_unauth, c.max_connections / 4);
        assert_eq!(c.max_unauth_per_address, 256);
        let too_many = ConnArgs {
            max_connections: 19_000,
            ..args.clone()
        };
        let e = ConnConfig::resolve(&too_many, 20_000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CAMPUS_MAX_CONNECTIONS is 19000"), "{e}");
        // The common default limit still serves a class: the reserve shrinks to half.
        let small = ConnConfig::resolve(&args, 1024).unwrap();
        assert_eq!(small.max_connections, 256);
        let e = ConnConfig::resolve(&args, 100).unwrap_err().to_string();
        assert!(e.contains("raise the limit"), "{e}");
        let zero = ConnArgs {
            ws_per_user: 0,
            ..args
        };
        assert!(ConnConfig::resolve(&zero, 20_000).is_err());
    }
}
