//! The server under test (our own `campus serve` or an existing one), its
//! users, and their tokens.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;

use crate::client::login;
use crate::server::{add_users_parallel, campus_bin, ServerProcess};

/// Password of the users the load generator creates on its own server.
pub const DEFAULT_PASSWORD: &str = "loadgen-password-1";

/// Where the students live.
pub struct Target {
    /// Our own server (killed on drop), if we started one.
    pub own: Option<ServerProcess>,
    /// Base URL.
    pub url: String,
    /// Server pid for /proc sampling, when known.
    pub pid: Option<u32>,
    /// Student password.
    pub password: String,
    /// Student name prefix; students are `{prefix}{i}`.
    pub prefix: String,
    /// Data dir + binary for creating users with the CLI, when we may.
    cli: Option<(PathBuf, PathBuf)>,
    /// How many users exist already (created by us).
    created: usize,
    /// Tokens by user name, reused across sweep steps (logins are rate limited per user).
    tokens: HashMap<String, String>,
    http: reqwest::Client,
}

/// How to reach the server.
pub struct TargetOptions {
    /// An existing server; `None` starts our own.
    pub url: Option<String>,
    /// Pid of the existing server (for RSS/CPU/fds sampling).
    pub server_pid: Option<u32>,
    /// Password of the pre-created students of an existing server.
    pub password: Option<String>,
    /// Student name prefix.
    pub prefix: String,
    /// With `url`: create the students with the CLI in this data dir first.
    pub create_users_in: Option<PathBuf>,
    /// Extra environment for our own server.
    pub env: Vec<(String, String)>,
}

impl Target {
    /// Start our own server, or describe the existing one.
    pub async fn open(o: TargetOptions) -> anyhow::Result<Target> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let password = o.password.unwrap_or_else(|| DEFAULT_PASSWORD.to_string());
        if let Some(url) = o.url {
            let cli = match o.create_users_in {
                Some(dir) => Some((campus_bin()?, dir)),
                None => None,
            };
            return Ok(Target {
                own: None,
                url: url.trim_end_matches('/').to_string(),
                pid: o.server_pid,
                password,
                prefix: o.prefix,
                cli,
                created: 0,
                tokens: HashMap::new(),
                http,
            });
        }
        let env: Vec<(&str, String)> = o.env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let server = ServerProcess::start(&env).await?;
        Ok(Target {
            url: server.url.clone(),
            pid: Some(server.pid()),
            password,
            prefix: o.prefix,
            cli: Some((server.bin.clone(), server.data_dir.path().to_path_buf())),
            created: 0,
            own: Some(server),
            tokens: HashMap::new(),
            http,
        })
    }

    /// Name of student `i`.
    pub fn name(&self, i: usize) -> String {
        format!("{}{i}", self.prefix)
    }

    /// Make sure students `0..n` exist (creates the missing ones with the CLI, 4 at a time).
    pub async fn ensure_users(&mut self, n: usize) -> anyhow::Result<()> {
        let Some((bin, dir)) = self.cli.clone() else {
            return Ok(()); // pre-created on the existing server
        };
        if n <= self.created {
            return Ok(());
        }
        let names: Vec<String> = (self.created..n).map(|i| self.name(i)).collect();
        let password = self.password.clone();
        let t = std::time::Instant::now();
        tokio::task::spawn_blocking(move || add_users_parallel(&bin, &dir, &names, &password, 4))
            .await
            .context("user creation task")??;
        eprintln!(
            "created {} users in {:.1} s",
            n - self.created,
            t.elapsed().as_secs_f64()
        );
        self.created = n;
        Ok(())
    }

    /// Tokens of students `0..n` (logging in those not logged in yet, 8 at a time).
    pub async fn tokens(&mut self, n: usize) -> anyhow::Result<Vec<String>> {
        let missing: Vec<String> = (0..n)
            .map(|i| self.name(i))
            .filter(|u| !self.tokens.contains_key(u))
            .collect();
        let http = self.http.clone();
        let url = Arc::new(self.url.clone());
        let pw = Arc::new(self.password.clone());
        let got: Vec<anyhow::Result<(String, String)>> = futures_util::stream::iter(missing)
            .map(|user| {
                let (http, url, pw) = (http.clone(), url.clone(), pw.clone());
                async move {
                    let tok = login(&http, &url, &user, &pw).await?;
                    Ok((user, tok))
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for r in got {
            let (u, t) = r?;
            self.tokens.insert(u, t);
        }
        (0..n)
            .map(|i| {
                self.tokens
                    .get(&self.name(i))
                    .cloned()
                    .context("missing token")
            })
            .collect()
    }
}
