//! The credentials section (`BENCH_ONLY=credentials`; docs/performance.md#credentials): the
//! MITM request rate with a placeholder substituted on every request to a bound host, against
//! the same traffic through a daemon with no credentials (the client then sends the secret
//! itself), and the cost of scanning a request that carries no placeholder.
//!
//! One HTTPS origin (`api.bench.test`, dialled at 127.0.0.1 with `--map-host`) answers
//! `GET /v1/models?key=…` with a small JSON body and counts the requests that carried the real
//! secret. Two intercepting daemons: "off" with no credential, "on" with one credential bound
//! to the origin and a session for the client's container; the client (hyper HTTP/1.1
//! keep-alive over `CONNECT` as container `bench`, TLS to the name) sends an `Authorization`
//! header and a `key` query parameter, each holding the secret (off) or the placeholder (on),
//! with Claude-Code-like other headers. Rows in the order off on on off, half a window each,
//! as the LLM section does. The scan cost is timed in-process through
//! `greyproxyd::credentials::bench::scan_request` on the same headers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use greyproxy_testkit::agent_env::rule;
use greyproxy_testkit::tls::{TestCa, client_config};
use greyproxy_testkit::{Daemon, DaemonBuilder};

use crate::client::{check_established, read_head};
use crate::mitm_load::{Rate, drive, serve_h1_tls};
use crate::sys::{daemon_pid, pct, sorted};

/// The API host the client names.
const API: &str = "api.bench.test";
/// The container the client proxies as.
const CONTAINER: &str = "bench";
/// The secret (what the off daemon's client sends itself).
const SECRET: &str = "sk-bench-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH";
/// The origin's answer.
const ANSWER: &str = r#"{"object":"list","data":[{"id":"model-a"},{"id":"model-b"}]}"#;

/// What the section runs, from the environment.
pub struct CredCfg {
    /// Measured window per row.
    pub window: Duration,
    /// Warm-up per row.
    pub warm: Duration,
    /// Connection counts, in order.
    pub conns: Vec<usize>,
    /// Off-on-on-off cycles per connection count; the ratio is judged on their median.
    pub rounds: usize,
    /// The daemon binary.
    pub daemon: String,
}

impl CredCfg {
    /// `BENCH_CRED_SECS`, `BENCH_CRED_WARMUP` (seconds), `BENCH_CRED_CONNS` (comma list),
    /// `BENCH_CRED_ROUNDS`.
    pub fn from_env(full: bool, daemon: &str) -> CredCfg {
        let conns = crate::env_conns("BENCH_CRED_CONNS");
        let rounds = std::env::var("BENCH_CRED_ROUNDS").map_or(if full { 6 } else { 1 }, |v| {
            v.trim()
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("BENCH_CRED_ROUNDS={v:?}"))
                .max(1)
        });
        CredCfg {
            window: crate::env_secs("BENCH_CRED_SECS", if full { 4.0 } else { 0.3 }),
            warm: crate::env_secs("BENCH_CRED_WARMUP", if full { 0.5 } else { 0.1 }),
            conns,
            rounds,
            daemon: daemon.to_string(),
        }
    }
}

/// The section's figure that has a target (docs/performance.md#targets).
pub struct CredTargets {
    /// req/s with substitution ÷ without credentials, %, per connection count.
    pub on_vs_off: Vec<(usize, f64)>,
}

/// The origin: answers every request with [`ANSWER`]; counts those that carried the secret in
/// both places.
async fn origin(ca: &TestCa, with_secret: Arc<AtomicU64>) -> SocketAddr {
    serve_h1_tls(ca, &[API, "127.0.0.1"], move || {
        let seen = with_secret.clone();
        service_fn(move |req: Request<hyper::body::Incoming>| {
            let seen = seen.clone();
            async move {
                let auth = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .is_some_and(|v| v.as_bytes().ends_with(SECRET.as_bytes()));
                let query = req.uri().query().is_some_and(|q| q.contains(SECRET));
                if auth && query {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(
                    Response::builder()
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from_static(ANSWER.as_bytes())))
                        .unwrap(),
                )
            }
        })
    })
    .await
}

/// A daemon intercepting `api.bench.test`; with `credential`, one credential bound to it and a
/// session for [`CONTAINER`]; returns it with the token the client sends.
async fn daemon(bin: &str, ca_arg: &str, origin: SocketAddr, credential: bool) -> (Daemon, String) {
    let map = format!("{API}={}", origin.ip());
    let d = DaemonBuilder::new(bin)
        .args(&["--upstream-ca", ca_arg, "--map-host", &map])
        .env("RUST_LOG", "info")
        .start()
        .await;
    let mut ws = d.client().await;
    rule(&mut ws, "*", API, "allow").await;
    if !credential {
        return (d, SECRET.to_string());
    }
    let c = ws
        .query(
            json!({"command":"create_credential","label":"BENCH_KEY","secret":SECRET,
                      "destinations":[API]}),
        )
        .await;
    assert_eq!(c["label"], "BENCH_KEY", "{c}");
    let s = ws
        .query(json!({"command":"create_session","container":CONTAINER,
                      "credentials":["BENCH_KEY"],"ttl_seconds":3600}))
        .await;
    let ph = s["placeholders"]["BENCH_KEY"].as_str().unwrap().to_string();
    (d, ph)
}

/// Claude-Code-like request headers around the token (what the scan walks on every request).
fn headers(token: &str, authority: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        h.insert(k, HeaderValue::from_str(&v).unwrap());
    };
    put("host", authority.to_string());
    put("authorization", format!("Bearer {token}"));
    put("accept", "application/json".into());
    put("anthropic-version", "2023-06-01".into());
    put(
        "anthropic-beta",
        "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14".into(),
    );
    put("user-agent", "claude-cli/1.0.98 (external, cli)".into());
    put("x-app", "cli".into());
    put("x-stainless-lang", "js".into());
    put("x-stainless-package-version", "0.55.1".into());
    put("x-stainless-os", "Linux".into());
    put("x-stainless-arch", "x64".into());
    put("x-stainless-runtime", "node".into());
    put("x-stainless-runtime-version", "v22.17.0".into());
    put("x-stainless-retry-count", "0".into());
    put("x-stainless-timeout", "600".into());
    put("accept-language", "*".into());
    put("sec-fetch-mode", "cors".into());
    put("accept-encoding", "gzip, deflate".into());
    h
}

/// TLS to `api.bench.test` through `CONNECT` as [`CONTAINER`] on `proxy`, then HTTP/1.1.
async fn connect(
    proxy: SocketAddr,
    origin: SocketAddr,
    tls: Arc<ClientConfig>,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let mut s = TcpStream::connect(proxy).await.map_err(|e| e.to_string())?;
    let target = format!("{API}:{}", origin.port());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{CONTAINER}:x"));
    s.write_all(
        format!(
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {basic}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    check_established(&read_head(&mut s).await);
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from(API).unwrap(), s)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(send)
}

/// One request on `send`; checks the status and the answer's length.
async fn one(
    mut send: SendRequest<Full<Bytes>>,
    headers: Arc<HeaderMap>,
    path: Arc<String>,
) -> (SendRequest<Full<Bytes>>, Result<(), String>) {
    let r = async {
        send.ready().await.map_err(|e| format!("connection: {e}"))?;
        let mut req = Request::get(path.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap();
        *req.headers_mut() = (*headers).clone();
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        if resp.status() != StatusCode::OK {
            return Err(format!("status {}", resp.status()));
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        if body.to_bytes().len() != ANSWER.len() {
            return Err("short answer".into());
        }
        Ok(())
    }
    .await;
    (send, r)
}

/// ns per scan of `h` (and a query without a placeholder), the median of 5 rounds.
fn scan_ns(h: &HeaderMap, query: &str) -> f64 {
    let rounds: Vec<f64> = (0..5)
        .map(|_| {
            let n = 200_000u32;
            let t = Instant::now();
            let mut found = 0;
            for _ in 0..n {
                found += greyproxyd::credentials::bench::scan_request(
                    std::hint::black_box(h),
                    Some(std::hint::black_box(query)),
                );
            }
            assert_eq!(found, 0);
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    sorted(&rounds)[2]
}

/// Runs the section and prints its table.
pub async fn run(cfg: &CredCfg) -> CredTargets {
    eprintln!("[credentials] origin, two daemons (no credential, one bound credential)…");
    let ca = TestCa::new("greyproxy bench credentials origin CA");
    let with_secret = Arc::new(AtomicU64::new(0));
    let origin = origin(&ca, with_secret.clone()).await;
    let ca_arg = ca.pem_arg();
    let (off, off_token) = daemon(&cfg.daemon, &ca_arg, origin, false).await;
    // `BENCH_CRED_AA`: the second daemon without credentials too, so that the two rows differ
    // only in which daemon serves them: the method's own bias, which the target's ratio
    // includes.
    let aa = std::env::var_os("BENCH_CRED_AA").is_some();
    if aa {
        eprintln!("[credentials] BENCH_CRED_AA: neither daemon has a credential");
    }
    let (on, on_token) = daemon(&cfg.daemon, &ca_arg, origin, !aa).await;
    let authority = format!("{API}:{}", origin.port());
    let routes = [
        ("MITM, no credentials", &off, &off_token),
        ("MITM, substituted", &on, &on_token),
    ];
    let mut rows: Vec<(usize, usize, Rate)> = Vec::new();
    // Per connection count, each round's on ÷ off rate (%).
    let mut ratios: Vec<(usize, Vec<f64>)> = Vec::new();
    let mut sent = [0u64; 2];
    for &n in &cfg.conns {
        let mut round_ratios = Vec::new();
        for _ in 0..cfg.rounds {
            let mut round = [(0u64, Duration::ZERO); 2];
            for i in [0, 1, 1, 0] {
                let (name, d, token) = routes[i];
                eprintln!("[credentials] {n} connection(s), {name}…");
                let tls = client_config(&d.state_dir().join("ca-cert.pem"), &[b"http/1.1"]);
                let mut open = Vec::new();
                for _ in 0..n {
                    open.push(
                        connect(d.http.unwrap(), origin, tls.clone())
                            .await
                            .unwrap_or_else(|e| panic!("{name}: {e}")),
                    );
                }
                let h = Arc::new(headers(token, &authority));
                let path = Arc::new(format!("/v1/models?limit=20&key={token}"));
                let before = with_secret.load(Ordering::Relaxed);
                let r = drive(
                    Some(daemon_pid(d.state_dir())),
                    open,
                    cfg.warm,
                    cfg.window / 2,
                    move |c| one(c, h.clone(), path.clone()),
                )
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
                let got = with_secret.load(Ordering::Relaxed) - before;
                assert!(
                    got >= r.total,
                    "{name}: {got} of {} requests reached the origin with the secret",
                    r.total
                );
                sent[i] += r.total;
                round[i].0 += r.requests;
                round[i].1 += r.window;
                match rows.iter_mut().find(|(c, j, _)| *c == n && *j == i) {
                    Some((_, _, sum)) => {
                        sum.requests += r.requests;
                        sum.micros.extend(r.micros);
                        sum.window += r.window;
                        sum.cpu.1 += r.cpu.1;
                    }
                    None => rows.push((n, i, r)),
                }
            }
            let per_s = |(k, w): (u64, Duration)| k as f64 / w.as_secs_f64().max(f64::MIN_POSITIVE);
            round_ratios.push(100.0 * per_s(round[1]) / per_s(round[0]).max(f64::MIN_POSITIVE));
        }
        ratios.push((n, round_ratios));
    }
    let counted = on
        .client()
        .await
        .query(json!({"command":"list_credentials"}))
        .await["credentials"][0]["substitutions"]
        .as_u64()
        .unwrap_or(0);
    let plain = headers("sk-no-placeholder-here-0123456789abcdef", &authority);
    let ns = scan_ns(
        &plain,
        "limit=20&key=sk-no-placeholder-here-0123456789abcdef",
    );
    println!(
        "## Credentials: MITM with a placeholder substituted on every request vs no credentials (HTTP/1.1 keep-alive, `GET /v1/models?…&key=…` with {} headers, the token in `Authorization` and the query; {} rounds of off on on off per connection count, {} s each; rates over all rounds, the target judged on the median of the rounds' ratios)",
        plain.len(),
        cfg.rounds,
        cfg.window.as_secs_f64() / 2.0
    );
    println!();
    println!("| conns | path | req/s | ÷ no credentials | p50 µs | p99 µs | daemon CPU µs/req |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let rate = |n: usize, i: usize| {
        rows.iter()
            .find(|(c, j, _)| *c == n && *j == i)
            .map_or(0.0, |(_, _, r)| r.requests as f64 / r.window.as_secs_f64())
    };
    for &n in &cfg.conns {
        for (c, i, r) in rows.iter().filter(|(c, ..)| *c == n) {
            let v = sorted(&r.micros);
            println!(
                "| {c} | {} | {:.0} | {:.1} % | {:.0} | {:.0} | {:.0} |",
                routes[*i].0,
                rate(n, *i),
                100.0 * rate(n, *i) / rate(n, 0).max(f64::MIN_POSITIVE),
                pct(&v, 50.0),
                pct(&v, 99.0),
                r.cpu.1 * 1e6 / r.requests.max(1) as f64,
            );
        }
    }
    println!();
    let median = |v: &[f64]| {
        let v = sorted(v);
        if v.is_empty() {
            0.0
        } else if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        }
    };
    for (n, r) in &ratios {
        let list: Vec<String> = r.iter().map(|x| format!("{x:.1}")).collect();
        println!(
            "- {n} connection(s): substituted ÷ no credentials per round {} %; **median {:.1} %**.",
            list.join(", "),
            median(r)
        );
    }
    println!(
        "- Every request reached the origin with the real secret in the header and the query ({} substituted, {} sent by the client itself); the on daemon counted {counted} substitutions (two places per request, warm-up included).",
        sent[1], sent[0]
    );
    println!(
        "- Scanning a request without a placeholder ({} headers and a query, as the exchange does on every intercepted request): {ns:.0} ns (median of 5 × 200 000, in-process).",
        plain.len()
    );
    println!();
    let _ = off.stop().await;
    let _ = on.stop().await;
    CredTargets {
        on_vs_off: ratios.iter().map(|(n, r)| (*n, median(r))).collect(),
    }
}
