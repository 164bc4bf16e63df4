//! The accept loop survives running out of file descriptors (`EMFILE`): it
//! backs off and retries, and the clients that waited in the backlog are
//! served once descriptors are free again (issue 12, section 1: the verified
//! attack left the server logging `accept error: Too many open files`).
//!
//! A test binary of its own: it lowers this process's open-files limit,
//! which would disturb tests running next to it.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use support::db::test_databases;
use support::server::{wait_limit, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// The highest descriptor number open in this process.
fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_does_not_stop_the_listener() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |_| {}).await;
    let conns = server.state().conns.clone();
    // Client sockets first: connecting them needs no new descriptor here,
    // while the server's accept of each one does.
    let sockets: Vec<TcpSocket> = (0..5).map(|_| TcpSocket::new_v4().unwrap()).collect();

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, highest_fd() + 1, hard).unwrap();
    // Fill every free number below the limit.
    let mut filler = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        filler.push(f);
    }
    let mut clients = Vec::new();
    for s in sockets {
        clients.push(s.connect(server.addr).await.unwrap());
    }
    let deadline = tokio::time::Instant::now() + wait_limit();
    while conns.stats().accept_errors == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "accept never failed: the server got descriptors after all?"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(filler);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();

    // The loop is still accepting: every client that waited is answered.
    for c in &mut clients {
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: campus\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        tokio::time::timeout(wait_limit(), c.read_to_string(&mut reply))
            .await
            .expect("a client in the backlog was never served")
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
    let r = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}
