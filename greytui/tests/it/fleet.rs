//! greytui over several daemons (docs/fleet.md): `--once` through `--ssh` with a stand-in ssh
//! command that runs `greyproxyd attach` locally, and through a real sshd on 127.0.0.1 driving
//! three daemons with `--host` entries of a hosts.toml. Real daemons, real curl held by them.

use greyproxy_testkit::origin::http_origin;
use greyproxy_testkit::sshd::Sshd;
use greyproxy_testkit::{CurlResult, Daemon};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::common::{daemon, daemon_bin, finish, greytui, held_curl, standin};

/// A curl held by `d` to a fresh origin on `ip`, and its pending id.
async fn held(d: &Daemon, ip: &str) -> (JoinHandle<CurlResult>, u64) {
    let origin = http_origin(ip).await;
    let mut ws = d.client().await;
    let h = held_curl(d, &format!("http://{origin}/x"));
    let p = ws.pending_for(ip, origin.port()).await;
    (h, p["id"].as_u64().unwrap())
}

fn json(stdout: &str) -> Vec<Value> {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test]
async fn once_over_ssh_lists_every_hosts_pending_and_allows_on_the_owner() {
    let (a, b) = (daemon().await, daemon().await);
    let base = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(a.state_dir(), base.path().join("alpha")).unwrap();
    std::os::unix::fs::symlink(b.state_dir(), base.path().join("beta")).unwrap();
    let ssh = standin(base.path()).display().to_string();
    let (ha, ida) = held(&a, "127.0.0.3").await;
    let (hb, idb) = held(&b, "127.0.0.4").await;
    let fleet = ["--ssh", "alpha", "--ssh", "beta", "--ssh-command", &ssh];

    let r = greytui(&[&fleet[..], &["--once", "pending", "--json"]].concat()).await;
    assert_eq!(r.code, 0, "{r:?}");
    let items = json(&r.stdout);
    let seen: Vec<(&str, u64, &str)> = items
        .iter()
        .map(|i| {
            (
                i["host"].as_str().unwrap(),
                i["id"].as_u64().unwrap(),
                i["destination_host"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("alpha", ida, "127.0.0.3"), ("beta", idb, "127.0.0.4")]
    );

    let r = greytui(&[&fleet[..], &["--once", "pending"]].concat()).await;
    assert!(r.stdout.starts_with("HOST"), "{r:?}");
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("beta") && l.contains("127.0.0.4")),
        "{r:?}"
    );

    // A bare id is ambiguous with two hosts; HOST:ID reaches the owner only.
    let r = greytui(&[&fleet[..], &["--once", "allow", &idb.to_string()]].concat()).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("HOST:"), "{r:?}");
    let r = greytui(&[&fleet[..], &["--once", "allow", &format!("beta:{idb}")]].concat()).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .starts_with(&format!("allowed pending request {idb} on beta")),
        "{r:?}"
    );
    let res = finish(hb).await;
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    assert!(!ha.is_finished(), "alpha's request is still held");

    let r = greytui(&[&fleet[..], &["--once", "status", "--json"]].concat()).await;
    assert_eq!(r.code, 0, "{r:?}");
    let st = json(&r.stdout);
    assert_eq!(st[0]["host"], "alpha");
    assert_eq!(st[0]["status"]["pending_count"], 1);
    assert_eq!(st[1]["status"]["pending_count"], 0);

    // A single-daemon listing runs on each host, one block per host.
    let r = greytui(&[&fleet[..], &["--once", "middlewares"]].concat()).await;
    assert_eq!(r.code, 0, "{r:?}");
    let blocks: Vec<&str> = r.stdout.split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{r:?}");
    assert!(
        blocks[0].starts_with("host:") && blocks[0].contains("alpha"),
        "{r:?}"
    );
    assert!(
        blocks[1].contains("beta") && blocks[1].contains("no middlewares"),
        "{r:?}"
    );
    // An object per host (usage) is wrapped with its host.
    let r = greytui(&[&fleet[..], &["--once", "usage", "--json"]].concat()).await;
    assert_eq!(r.code, 0, "{r:?}");
    let u = json(&r.stdout);
    assert_eq!(
        (u[0]["host"].as_str(), u[1]["host"].as_str()),
        (Some("alpha"), Some("beta"))
    );
    assert_eq!(u[1]["result"]["group_by"], "container", "{r:?}");
    ha.abort();
}

#[tokio::test]
async fn a_host_that_fails_is_reported_and_the_others_still_answer() {
    let a = daemon().await;
    let base = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(a.state_dir(), base.path().join("up")).unwrap();
    // No daemon behind this one: attach says so, and the stand-in passes its stderr on.
    std::fs::create_dir(base.path().join("down")).unwrap();
    let ssh = standin(base.path()).display().to_string();
    let (h, id) = held(&a, "127.0.0.5").await;
    let args = [
        "--ssh",
        "down",
        "--ssh",
        "up",
        "--ssh-command",
        &ssh,
        "--once",
        "pending",
        "--json",
    ];
    let r = greytui(&args).await;
    assert_eq!(r.code, 3, "{r:?}");
    let items = json(&r.stdout);
    assert_eq!(items.len(), 1, "{r:?}");
    assert_eq!(
        (items[0]["host"].as_str(), items[0]["id"].as_u64()),
        (Some("up"), Some(id))
    );
    assert!(
        r.stderr.contains("greytui: down: ") && r.stderr.contains("no greyproxyd control socket"),
        "{r:?}"
    );
    // A program that answers garbage instead of the protocol: a per-host error.
    let junk = base.path().join("junk-ssh");
    std::fs::write(
        &junk,
        "#!/bin/sh\necho 'HTTP/1.0 500 nonsense'\necho oops >&2\n",
    )
    .unwrap();
    std::fs::set_permissions(&junk, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let junk = junk.display().to_string();
    let r = greytui(&["--ssh", "j", "--ssh-command", &junk, "--once", "pending"]).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("greytui: j: ssh j: oops"), "{r:?}");
    // An ssh program that does not exist: a per-host error too, worded.
    let r = greytui(&[
        "--ssh",
        "x",
        "--ssh-command",
        "/nonexistent/ssh",
        "--once",
        "status",
    ])
    .await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("cannot run /nonexistent/ssh"), "{r:?}");
    h.abort();
}

/// The real thing: sshd on 127.0.0.1, three daemons behind it (hosts.toml entries whose
/// remote command attaches to each daemon's state dir), a held request on each.
#[tokio::test]
async fn three_daemons_through_a_real_sshd() {
    if !Sshd::available() {
        eprintln!("skipped: /usr/sbin/sshd is not installed (.ci/run installs openssh-server)");
        return;
    }
    let sshd = Sshd::start().await;
    let mut daemons = vec![daemon().await, daemon().await, daemon().await];
    let names = ["one", "two", "three"];
    let conf = tempfile::tempdir().unwrap();
    let mut toml = String::new();
    for (n, d) in names.iter().zip(&daemons) {
        toml.push_str(&format!(
            "[[host]]\nname = \"{n}\"\nssh = \"127.0.0.1\"\nssh_command = \"{}\"\nremote_command = \"{} attach --state-dir {}\"\n\n",
            sshd.ssh_command(),
            daemon_bin().display(),
            d.state_dir().display()
        ));
    }
    let hosts_file = conf.path().join("hosts.toml");
    std::fs::write(&hosts_file, toml).unwrap();
    let hf = hosts_file.display().to_string();
    let fleet = [
        "--hosts-file",
        &hf,
        "--host",
        "one",
        "--host",
        "two",
        "--host",
        "three",
    ];
    let mut held_ = Vec::new();
    for (i, d) in daemons.iter().enumerate() {
        held_.push(held(d, &format!("127.0.0.{}", 6 + i)).await);
    }

    let r = greytui(&[&fleet[..], &["--once", "pending", "--json"]].concat()).await;
    assert_eq!(r.code, 0, "{r:?}\nsshd log:\n{}", sshd.log());
    let items = json(&r.stdout);
    let hosts: Vec<(&str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["host"].as_str().unwrap(),
                i["destination_host"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hosts,
        [
            ("one", "127.0.0.6"),
            ("two", "127.0.0.7"),
            ("three", "127.0.0.8")
        ]
    );

    let (h2, id2) = held_.remove(1);
    let r = greytui(&[&fleet[..], &["--once", "allow", &format!("two:{id2}")]].concat()).await;
    assert_eq!(r.code, 0, "{r:?}");
    let res = finish(h2).await;
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    assert!(
        held_.iter().all(|(h, _)| !h.is_finished()),
        "the others are still held"
    );

    // Kill "one" as a crash would: the others stay usable, "one" is reported.
    daemons[0].kill();
    let r = greytui(&[&fleet[..], &["--once", "pending", "--json"]].concat()).await;
    assert_eq!(r.code, 3, "{r:?}");
    let items = json(&r.stdout);
    assert_eq!(items.len(), 1, "{r:?}");
    assert_eq!(items[0]["host"], "three");
    assert!(
        r.stderr.contains("greytui: one: ") && r.stderr.contains("nothing listens"),
        "{r:?}"
    );
    let (h3, id3) = held_.remove(1);
    let r = greytui(&[&fleet[..], &["--once", "deny", &format!("three:{id3}")]].concat()).await;
    assert_eq!(r.code, 0, "{r:?}");
    let res = finish(h3).await;
    assert_ne!(res.status, 200, "denied: {res:?}");
    for (h, _) in held_ {
        h.abort();
    }
}

#[tokio::test]
async fn watch_over_two_hosts_prints_each_event_with_its_host() {
    use tokio::io::AsyncBufReadExt;
    let (a, b) = (daemon().await, daemon().await);
    let base = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(a.state_dir(), base.path().join("alpha")).unwrap();
    std::os::unix::fs::symlink(b.state_dir(), base.path().join("beta")).unwrap();
    let ssh = standin(base.path()).display().to_string();
    let mut child = crate::common::command()
        .args(["--ssh", "alpha", "--ssh", "beta", "--ssh-command", &ssh])
        .args(["--once", "watch", "--event", "pending_request.created"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // The watcher subscribes in its own time: hold a fresh request on each host not printed
    // yet, once a second, until both have been.
    let mut seen = std::collections::BTreeSet::new();
    let mut held_ = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while seen.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "saw only {seen:?}");
        for (d, host, ip) in [(&a, "alpha", "127.0.0.9"), (&b, "beta", "127.0.0.10")] {
            if !seen.iter().any(|(h, _): &(String, String)| h == host) {
                let origin = http_origin(ip).await;
                held_.push(held_curl(d, &format!("http://{origin}/w")));
            }
        }
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while let Ok(line) = tokio::time::timeout_at(until, lines.next_line()).await {
            let line = line.unwrap().expect("watch still running");
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["type"], "pending_request.created", "{v}");
            let host = v["host"].as_str().unwrap().to_string();
            let dest = v["data"]["destination_host"].as_str().unwrap().to_string();
            seen.insert((host, dest));
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            ("alpha".to_string(), "127.0.0.9".to_string()),
            ("beta".to_string(), "127.0.0.10".to_string())
        ]
    );
    let _ = child.kill().await;
    for h in held_ {
        h.abort();
    }
}
