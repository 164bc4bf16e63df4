//! Browser-facing checks (issue 12, section 5), each performing the attack
//! against a real server on loopback: a DNS-rebinding page (its own `Host`
//! and `Origin`) opening a WebSocket; login CSRF with a `text/plain` form;
//! a guesser trying to lock a student out with wrong passwords; and a
//! classroom behind one address logging in at once.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::IpAddr;
use std::time::Duration;

use campus_protocol::Role;
use campus_server::store::NewUser;
use support::db::test_databases;
use support::server::TestServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Status of a WebSocket handshake with these headers (101: upgraded).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_origin_is_the_public_url_not_the_host_header() {
    let db = test_databases().await.remove(0);
    // No CAMPUS_PUBLIC_URL: the origins of the bound address.
    let server = TestServer::start(&db.url, |_| {}).await;
    let (_, token) = server.student("dora").await;
    let port = server.addr.port();
    let cookie = ("cookie", format!("campus_token={token}"));
    let with = |origin: &str, host: Option<&str>| {
        let mut h = vec![cookie.clone(), ("origin", origin.to_string())];
        if let Some(host) = host {
            h.push(("host", host.to_string()));
        }
        h
    };
    for ok in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        assert_eq!(ws_status(&server, &with(&ok, None)).await, 101, "{ok}");
    }
    // DNS rebinding: evil.example resolves to us; the page's Host and Origin agree.
    assert_eq!(
        ws_status(&server, &with("http://evil.example", Some("evil.example"))).await,
        403
    );
    let host = format!("evil.example:{port}");
    assert_eq!(
        ws_status(&server, &with(&format!("http://{host}"), Some(&host))).await,
        403
    );
    // An https page is another origin than this plain-http server.
    assert_eq!(
        ws_status(&server, &with(&format!("https://127.0.0.1:{port}"), None)).await,
        403
    );
    assert_eq!(ws_status(&server, &with("null", None)).await, 403);
    server.stop().await;

    // With a public URL only it is allowed, whatever the Host says.
    let server = TestServer::start(&db.url, |a| {
        a.public_url = Some("https://ide.campus.test".into());
    })
    .await;
    let (_, token) = server.student("dora2").await;
    let cookie = ("cookie", format!("campus_token={token}"));
    let with = |origin: &str, host: &str| {
        vec![
            cookie.clone(),
            ("origin", origin.to_string()),
            ("host", host.to_string()),
        ]
    };
    assert_eq!(
        ws_status(&server, &with("https://ide.campus.test", "ide.campus.test")).await,
        101
    );
    assert_eq!(
        ws_status(&server, &with("http://ide.campus.test", "ide.campus.test")).await,
        403,
        "http is not the https origin"
    );
    let own = format!("http://{}", server.addr);
    assert_eq!(
        ws_status(&server, &with(&own, &server.addr.to_string())).await,
        403,
        "the listen address is not the public origin"
    );
    // An https public URL makes the cookies Secure.
    let r = reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&serde_json::json!({"username": "dora2", "password": "password-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(
        cookies.iter().all(|c| c.contains("; Secure")),
        "{cookies:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_logout_take_only_json() {
    let db = test_databases().await.remove(0);
    let server = TestServer::start(&db.url, |_| {}).await;
    server.add_user("ann", "correct-horse", Role::Student).await;
    let creds = r#"{"username":"ann","password":"correct-horse"}"#;
    let http = reqwest::Client::new();
    let post = |path: &str, ctype: Option<&str>, body: &str| {
        let mut r = http.post(server.url(path)).body(body.to_string());
        if let Some(c) = ctype {
            r = r.header("content-type", c);
        }
        r.send()
    };
    // A cross-site form can send these; none logs in or sets a cookie.
    for ctype in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let r = post("/api/auth/login", ctype, creds).await.unwrap();
        assert_eq!(r.status(), 415, "{ctype:?}");
        assert!(r.headers().get("set-cookie").is_none(), "{ctype:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "bad_request");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{body}"
        );
    }
    let r = post(
        "/api/auth/login",
        Some("application/json; charset=utf-8"),
        creds,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // The plain-http default: no Secure (the browser would drop the cookie).
    let set = r.headers()["set-cookie"].to_str().unwrap();
    assert!(!set.contains("Secure"), "{set}");
    // Logout: a form cannot log the student out either.
    let r = post("/api/auth/logout", Some("text/plain"), "")
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.headers().get("set-cookie").is_none());
    let r = post("/api/auth/logout", Some("application/json"), "{}")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    server.stop().await;
}

/// A client whose connections come from the loopback address `from`, with
/// a cookie jar (a browser) or without (a script).
fn client(from: [u8; 4], jar: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(from))
        .cookie_store(jar)
        .build()
        .unwrap()
}

async fn login(
    c: &reqwest::Client,
    server: &TestServer,
    user: &str,
    pw: &str,
) -> reqwest::Response {
    c.post(server.url("/api/auth/login"))
        .json(&serde_json::json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap()
}

async fn refusals(server: &TestServer) -> usize {
    server.records_flushed().await;
    server
        .store
        .recent_audit(Some("login.rate_limited"), 1000)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guesser_slows_down_but_cannot_lock_the_student_out() {
    for db in test_databases().await {
        let server = TestServer::start(&db.url, |a| {
            a.login.login_attempts = 3;
            a.login.login_backoff_ms = 1000;
            a.login.login_backoff_max_secs = 60;
        })
        .await;
        let b = db.backend;
        server.add_user("vic", "vics-password", Role::Student).await;
        server.add_user("ned", "neds-password", Role::Student).await;
        let here = [127, 0, 0, 1];
        // The student logged in from her browser before: it holds a device cookie.
        let browser = client(here, true);
        let r = login(&browser, &server, "vic", "vics-password").await;
        assert_eq!(r.status(), 200, "[{b}]");
        assert!(r
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("campus_device=")));

        // The attacker, from the same address, guesses her password. After
        // three wrong answers every attempt waits, and each wait is longer.
        let attacker = client(here, false);
        let mut waits = Vec::new();
        let mut guesses = 0;
        while waits.len() < 4 {
            let r = login(&attacker, &server, "vic", &format!("guess{guesses}")).await;
            match r.status().as_u16() {
                401 => guesses += 1,
                429 => {
                    let body: serde_json::Value = r.json().await.unwrap();
                    assert_eq!(body["code"], "rate_limited");
                    let ms = body["retry_after_ms"].as_u64().unwrap();
                    let until = tokio::time::Instant::now() + Duration::from_millis(ms);
                    waits.push(ms);
                    let last = waits.len() == 4;
                    // Hammering during the wait (with a margin before its
                    // end, on a loaded machine) is refused without a look;
                    // the last, longest wait must take all ten.
                    let before = if last { refusals(&server).await } else { 0 };
                    let mut hammered = 0;
                    for _ in 0..10 {
                        if tokio::time::Instant::now() + Duration::from_millis(300) >= until {
                            break;
                        }
                        let r = login(&attacker, &server, "vic", "vics-password").await;
                        assert_eq!(r.status(), 429, "[{b}] the right password is not looked at");
                        hammered += 1;
                    }
                    if last {
                        assert_eq!(hammered, 10, "[{b}] the last wait ({ms} ms) ended first");
                        assert_eq!(
                            refusals(&server).await,
                            before,
                            "[{b}] one audit entry per wait, not per refusal"
                        );
                    } else {
                        tokio::time::sleep_until(until).await;
                    }
                }
                s => panic!("[{b}] unexpected {s}"),
            }
        }
        assert_eq!(
            guesses,
            3 + 3,
            "[{b}] one guess per wait after the free ones"
        );
        assert!(
            waits.windows(2).all(|w| w[1] > w[0]),
            "[{b}] the waits grow: {waits:?}"
        );
        assert!(waits[3] >= 4 * waits[0].max(1), "[{b}] {waits:?}");

        // The attack is in force (the last wait is still running) for anyone
        // at that address without her cookie…
        assert_eq!(
            login(&client(here, false), &server, "vic", "vics-password")
                .await
                .status(),
            429,
            "[{b}]"
        );
        // …but not for her browser, nor from another address.
        assert_eq!(
            login(&browser, &server, "vic", "vics-password")
                .await
                .status(),
            200,
            "[{b}] the browser with her device cookie"
        );
        assert_eq!(
            login(
                &client([127, 0, 0, 2], false),
                &server,
                "vic",
                "vics-password"
            )
            .await
            .status(),
            200,
            "[{b}] another address"
        );
        // Nor for a classmate at the attacker's address.
        assert_eq!(
            login(&client(here, false), &server, "ned", "neds-password")
                .await
                .status(),
            200,
            "[{b}]"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classroom_behind_one_address_logs_in_at_once() {
    let db = test_databases().await.remove(0);
    // A tiny address budget: only failures spend it, never the class's logins.
    let server = TestServer::start(&db.url, |a| {
        a.login.login_address_failures = 5;
    })
    .await;
    let hash = campus_server::auth::password::hash("class-password").unwrap();
    let n = 12;
    for i in 0..n {
        server
            .store
            .create_user(NewUser {
                username: format!("kid{i}"),
                password_hash: hash.clone(),
                role: Role::Student,
            })
            .await
            .unwrap();
    }
    let attempts = (0..n).map(|i| {
        let server = &server;
        async move {
            let c = client([127, 0, 0, 1], true);
            // A few mistype first.
            if i % 6 == 0 {
                let r = login(&c, server, &format!("kid{i}"), "class-pasword").await;
                assert_eq!(r.status(), 401);
            }
            login(&c, server, &format!("kid{i}"), "class-password")
                .await
                .status()
                .as_u16()
        }
    });
    // Arriving a few at a time (the login queue for argon2 is two slots).
    let statuses: Vec<u16> = {
        use futures_util::StreamExt;
        futures_util::stream::iter(attempts)
            .buffered(4)
            .collect()
            .await
    };
    assert_eq!(statuses, vec![200; n], "every student got in");
    server.stop().await;
}
