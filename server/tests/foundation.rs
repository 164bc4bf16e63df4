//! Foundation integration tests: login, tokens, the WebSocket gate, protocol
//! errors, rate limits, health and graceful shutdown — against a real server on
//! an ephemeral port, for SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

mod support;

use campus_protocol::{close_codes, ClientMsg, ErrorCode, Role, ServerMsg};
use campus_protocol::{ConnectionMsg, ConnectionRequest, FileMsg, FileRequest};
use support::db::test_databases;
use support::server::TestServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

async fn ws_status(server: &TestServer, headers: &[(&'static str, String)]) -> u16 {
    let mut req = server.ws_url().into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut()
            .insert(*k, HeaderValue::from_str(v).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected ws error {e}"),
    }
}

async fn post_login(server: &TestServer, user: &str, pw: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&serde_json::json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_tokens_and_brute_force() {
    for db in test_databases().await {
        let server = TestServer::start(&db.url, |_| {}).await;
        server.add_user("ann", "correct-horse", Role::Student).await;
        let bob = server.add_user("bob", "bob-password", Role::Student).await;
        server.store.set_user_disabled("bob", true).await.unwrap();

        let ok = post_login(&server, "ann", "correct-horse").await;
        assert_eq!(ok.status(), 200, "[{}] login ok", db.backend);
        let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(cookie.starts_with("campus_token="));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let body: serde_json::Value = ok.json().await.unwrap();
        assert_eq!(body["user"]["username"], "ann");
        assert_eq!(body["user"]["role"], "student");
        assert!(body["expires_at"].as_str().unwrap().contains('T'));
        let token = body["token"].as_str().unwrap().to_string();

        // /api/auth/me with the token and with the cookie.
        let me = reqwest::Client::new()
            .get(server.url("/api/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        let me = reqwest::Client::new()
            .get(server.url("/api/auth/me"))
            .header("cookie", format!("campus_token={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);

        // Same message for a wrong password, an unknown user and a disabled user.
        let wrong = post_login(&server, "ann", "nope").await;
        assert_eq!(wrong.status(), 401);
        let wrong: serde_json::Value = wrong.json().await.unwrap();
        let unknown: serde_json::Value = post_login(&server, "nobody", "nope")
            .await
            .json()
            .await
            .unwrap();
        let disabled = post_login(&server, "bob", "bob-password").await;
        assert_eq!(disabled.status(), 401);
        let disabled: serde_json::Value = disabled.json().await.unwrap();
        assert_eq!(wrong["code"], "unauthorized");
        assert_eq!(wrong["message"], unknown["message"]);
        assert_eq!(wrong["message"], disabled["message"]);

        // A token of a user disabled later is refused.
        server.store.set_user_disabled("bob", false).await.unwrap();
        let bob_token = server.login("bob", "bob-password").await;
        server.store.set_user_disabled("bob", true).await.unwrap();
        let r = reqwest::Client::new()
            .get(server.url("/api/auth/me"))
            .bearer_auth(&bob_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "disabled user's token");
        let _ = bob;

        // Bad JSON body.
        let r = reqwest::Client::new()
            .post(server.url("/api/auth/login"))
            .header("content-type", "application/json")
            .body("{nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);

        // Brute force: 5 failures per username+address, then each attempt
        // waits (429 + Retry-After) before it is even looked at.
        for i in 0..5 {
            let r = post_login(&server, "carl", &format!("guess{i}")).await;
            assert_eq!(r.status(), 401);
        }
        let limited = post_login(&server, "carl", "guess5").await;
        assert_eq!(limited.status(), 429);
        let retry: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        let body: serde_json::Value = limited.json().await.unwrap();
        assert_eq!(body["code"], "rate_limited");
        assert!(body["retry_after_ms"].as_u64().unwrap() > 0);
        // Another username from the same IP is not affected.
        assert_eq!(
            post_login(&server, "ann", "correct-horse").await.status(),
            200
        );

        // Audit entries are written in the background.
        server.records_flushed().await;
        let failed = server
            .store
            .recent_audit(Some("login.failed"), 100)
            .await
            .unwrap();
        assert!(failed
            .iter()
            .any(|a| a.actor.as_deref() == Some("carl") && a.ip.as_deref() == Some("127.0.0.1")));
        let limited = server
            .store
            .recent_audit(Some("login.rate_limited"), 10)
            .await
            .unwrap();
        assert!(!limited.is_empty());
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_gate_and_hello() {
    for db in test_databases().await {
        let server = TestServer::start(&db.url, |_| {}).await;
        let (id, token) = server.student("dora").await;

        assert_eq!(ws_status(&server, &[]).await, 401, "no token");
        assert_eq!(
            ws_status(&server, &[("authorization", "Bearer not.a.jwt".into())]).await,
            401,
            "garbage token"
        );
        // Signed with another secret.
        let other = campus_server::auth::TokenKeys::new(
            b"another-secret-another-secret-xx",
            std::time::Duration::from_secs(600),
        );
        let (forged, _) = other.issue(id, "dora", Role::Admin, 0).unwrap();
        assert_eq!(
            ws_status(&server, &[("authorization", format!("Bearer {forged}"))]).await,
            401,
            "forged"
        );
        // alg: none.
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let payload = token.split('.').nth(1).unwrap();
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), payload);
        assert_eq!(
            ws_status(&server, &[("authorization", format!("Bearer {none}"))]).await,
            401,
            "alg none"
        );
        // Cookie from a foreign origin: cross-site WebSocket hijacking.
        assert_eq!(
            ws_status(
                &server,
                &[
                    ("cookie", format!("campus_token={token}")),
                    ("origin", "http://evil.example".into())
                ]
            )
            .await,
            403
        );
        // Cookie from our own origin works.
        assert_eq!(
            ws_status(
                &server,
                &[
                    ("cookie", format!("campus_token={token}")),
                    ("origin", format!("http://{}", server.addr))
                ]
            )
            .await,
            101
        );

        let mut c = server.connect(&token).await;
        // hello was checked by connect(); now the protocol errors.
        c.send_raw("{not json").await;
        match c.recv().await {
            ServerMsg::Connection(ConnectionMsg::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::BadRequest)
            }
            other => panic!("expected bad_request, got {other:?}"),
        }
        c.send_raw(r#"{"type":"launch_missiles","id":42}"#).await;
        match c.recv().await {
            ServerMsg::Connection(ConnectionMsg::Error { code, id, .. }) => {
                assert_eq!(code, ErrorCode::BadRequest);
                assert_eq!(id, Some(42), "the id is salvaged from an unknown message");
            }
            other => panic!("expected bad_request, got {other:?}"),
        }
        // The connection lives on.
        match c
            .request(|id| ClientMsg::Connection(ConnectionRequest::Ping { id }))
            .await
        {
            ServerMsg::Connection(ConnectionMsg::Pong { .. }) => {}
            other => panic!("expected pong, got {other:?}"),
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_announces_user_and_limits() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |_| {}).await;
    let (_, token) = server.student("erin").await;
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    use futures_util::StreamExt;
    let first = ws.next().await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "hello");
    assert_eq!(v["protocol"], 1);
    assert_eq!(v["user"]["username"], "erin");
    assert_eq!(v["limits"]["ws_messages_per_min"], 300);
    assert_eq!(v["limits"]["file_ops_per_min"], 100);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rate_limit_then_disconnect() {
    for db in test_databases().await {
        let server = TestServer::start(&db.url, |a| a.ws_messages_per_min = 5).await;
        let (_, token) = server.student("flo").await;
        let mut c = server.connect(&token).await;
        for _ in 0..5 {
            match c
                .request(|id| ClientMsg::Files(FileRequest::TrashList { id }))
                .await
            {
                ServerMsg::Files(FileMsg::Trash { .. }) => {}
                other => panic!("expected trash, got {other:?}"),
            }
        }
        match c
            .request(|id| ClientMsg::Files(FileRequest::TrashList { id }))
            .await
        {
            ServerMsg::Connection(ConnectionMsg::Error {
                code,
                retry_after_ms,
                ..
            }) => {
                assert_eq!(code, ErrorCode::RateLimited);
                assert!(retry_after_ms.unwrap() > 0);
            }
            other => panic!("expected rate_limited, got {other:?}"),
        }
        // Liveness pings have a budget of their own: the spent message limit
        // does not refuse them, so the client does not think the link is dead.
        for _ in 0..3 {
            assert!(matches!(
                c.request(|id| ClientMsg::Connection(ConnectionRequest::Ping { id }))
                    .await,
                ServerMsg::Connection(ConnectionMsg::Pong { .. })
            ));
        }
        // Keep flooding: the server closes the connection with a reason.
        for _ in 0..40 {
            c.send_raw(r#"{"type":"trash_list"}"#).await;
        }
        assert_eq!(c.closed().await, Some(close_codes::FLOODING));

        // The ping budget is bounded too.
        let mut p = server.connect(&token).await;
        for _ in 0..campus_server::ws::PINGS_PER_MIN {
            assert!(matches!(
                p.request(|id| ClientMsg::Connection(ConnectionRequest::Ping { id }))
                    .await,
                ServerMsg::Connection(ConnectionMsg::Pong { .. })
            ));
        }
        match p
            .request(|id| ClientMsg::Connection(ConnectionRequest::Ping { id }))
            .await
        {
            ServerMsg::Connection(ConnectionMsg::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::RateLimited)
            }
            other => panic!("expected rate_limited, got {other:?}"),
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_tells_clients() {
    for db in test_databases().await {
        let server = TestServer::start(&db.url, |_| {}).await;
        let (_, token) = server.student("gus").await;
        let mut c = server.connect(&token).await;
        let running = server.running.as_ref().unwrap();
        running.shutdown();
        match c.recv().await {
            ServerMsg::Connection(ConnectionMsg::Shutdown {
                reconnect_after_ms, ..
            }) => assert!(reconnect_after_ms > 0),
            other => panic!("expected shutdown, got {other:?}"),
        }
        assert_eq!(c.closed().await, Some(close_codes::SHUTDOWN));
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_user_is_disconnected() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |a| a.heartbeat_secs = 1).await;
    let (_, token) = server.student("hal").await;
    // Three tabs share one cached account answer (half a heartbeat); all of
    // them are closed once it expires.
    let mut tabs = Vec::new();
    for _ in 0..3 {
        tabs.push(server.connect(&token).await);
    }
    let mut c = tabs.remove(0);
    let ping = c
        .request(|id| ClientMsg::Connection(ConnectionRequest::Ping { id }))
        .await;
    assert!(matches!(
        ping,
        ServerMsg::Connection(ConnectionMsg::Pong { .. })
    ));
    server.store.set_user_disabled("hal", true).await.unwrap();
    // Signed out (4013: the account poll or the heartbeat re-check found it).
    assert_eq!(c.closed().await, Some(close_codes::REVOKED));
    for mut t in tabs {
        assert_eq!(t.closed().await, Some(close_codes::REVOKED));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    for db in test_databases().await {
        let server = TestServer::start(&db.url, |_| {}).await;
        let r = reqwest::get(server.url("/healthz")).await.unwrap();
        assert_eq!(r.status(), 200);
        let r = reqwest::get(server.url("/readyz")).await.unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["database"]["backend"], db.backend);
        assert!(v["sandbox"]["features"].is_array());
        let r = reqwest::get(server.url("/healthz")).await.unwrap();
        assert!(r.headers().contains_key("x-request-id"));
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_connections_and_oversized_messages_are_dropped() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |a| {
        a.heartbeat_secs = 1;
        a.heartbeat_timeout_secs = 2;
        a.ws_max_message_kb = 64;
    })
    .await;
    let (_, token) = server.student("ivy").await;

    // A client that stops reading never answers pings: closed with 4009.
    let mut silent = server.connect(&token).await;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(silent.closed().await, Some(close_codes::HEARTBEAT_TIMEOUT));

    // A message over the limit ends the connection; small ones are fine.
    let mut c = server.connect(&token).await;
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70 * 1024));
    c.send_raw(&big).await;
    let code = c.closed().await;
    assert!(code.is_none() || code == Some(1009), "{code:?}");
    let mut ok = server.connect(&token).await;
    assert!(matches!(
        ok.request(|id| ClientMsg::Connection(ConnectionRequest::Ping { id }))
            .await,
        ServerMsg::Connection(ConnectionMsg::Pong { .. })
    ));
    server.stop().await;
}
