//! One real agent CLI run through a real daemon against the mock LLM origin ([`crate::llm_mock`]):
//! the daemon maps the API host names to the mock (`--map-host`) and trusts its CA
//! (`--upstream-ca`); the agent runs with a throwaway `HOME`, a fake API key, the proxy
//! variables naming its container, and the daemon's CA.
//!
//! What each agent needs (learnt from the pinned releases, see `greyproxyd/tests/it/agents.rs`):
//! Claude Code trusts `NODE_EXTRA_CA_CERTS`, codex `SSL_CERT_FILE`; both honour `HTTPS_PROXY`,
//! and the commands their tools run (`curl`) need `http_proxy` in lower case. When the mock
//! could not bind port 443 the agents are pointed at its port: `ANTHROPIC_BASE_URL` for Claude
//! Code, `openai_base_url` in codex's `config.toml` (codex ignores `OPENAI_BASE_URL`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::control::Control;
use crate::daemon::{Daemon, DaemonBuilder};
use crate::llm_mock::LlmMock;

/// How long an agent may run before the test gives up on it.
pub const AGENT_WAIT: Duration = Duration::from_secs(120);

/// A daemon in front of a mock, and a home for the agent.
pub struct AgentEnv {
    /// The daemon.
    pub d: Daemon,
    /// A control client (receives every event).
    pub ws: Control,
    /// The mock LLM origin.
    pub mock: LlmMock,
    /// The agent's `HOME` and working directory.
    pub home: tempfile::TempDir,
    /// The container the agent's proxy credentials name.
    pub container: String,
}

impl std::fmt::Debug for AgentEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentEnv")
            .field("d", &self.d)
            .field("mock", &self.mock)
            .field("container", &self.container)
            .finish()
    }
}

/// A rule for `container` → `destination` (any port).
pub async fn rule(ws: &mut Control, container: &str, destination: &str, action: &str) {
    let r = ws
        .cmd(
            json!({"command":"create_rule","container_pattern":container,
                    "destination_pattern":destination,"action":action}),
        )
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
}

impl AgentEnv {
    /// Starts a daemon (`bin`) that dials `api.anthropic.com` and `api.openai.com` at the
    /// mock, with rules allowing `container` to reach `allow` and denying it `deny`.
    pub async fn start(
        bin: &str,
        mock: LlmMock,
        container: &str,
        allow: &[&str],
        deny: &[&str],
    ) -> AgentEnv {
        AgentEnv::start_with(bin, mock, container, allow, deny, &[]).await
    }

    /// [`AgentEnv::start`] with `extra` arguments for `greyproxyd serve` (a `--config` file…).
    pub async fn start_with(
        bin: &str,
        mock: LlmMock,
        container: &str,
        allow: &[&str],
        deny: &[&str],
        extra: &[&str],
    ) -> AgentEnv {
        let ip = mock.ip();
        let (anthropic, openai) = (
            format!("api.anthropic.com={ip}"),
            format!("api.openai.com={ip}"),
        );
        let ca = mock.ca_pem().display().to_string();
        let mut args = vec![
            "--map-host",
            anthropic.as_str(),
            "--map-host",
            openai.as_str(),
            "--upstream-ca",
            ca.as_str(),
        ];
        args.extend_from_slice(extra);
        let d = DaemonBuilder::new(bin).args(&args).start().await;
        let mut ws = d.client().await;
        for host in allow {
            rule(&mut ws, container, host, "allow").await;
        }
        for host in deny {
            rule(&mut ws, container, host, "deny").await;
        }
        AgentEnv {
            d,
            ws,
            mock,
            home: tempfile::tempdir().unwrap(),
            container: container.to_string(),
        }
    }

    /// `http://<container>:x@127.0.0.1:port`: the daemon names the client by the user name.
    pub fn proxy_url(&self) -> String {
        format!("http://{}:x@{}", self.container, self.d.http.unwrap())
    }

    /// The daemon's CA certificate.
    pub fn daemon_ca(&self) -> PathBuf {
        self.d.state_dir().join("ca-cert.pem")
    }

    /// A command for `program` with nothing of the test's environment but `PATH`: `HOME` and
    /// the working directory are [`AgentEnv::home`], every proxy variable names the daemon.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let proxy = self.proxy_url();
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("LANG", "C.UTF-8")
            .env("HTTPS_PROXY", &proxy)
            .env("HTTP_PROXY", &proxy)
            .env("https_proxy", &proxy)
            .env("http_proxy", &proxy)
            .current_dir(self.home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// `claude -p PROMPT --model MODEL ARGS…` with a fake key and the daemon's CA.
    pub fn claude(
        &self,
        claude: &std::path::Path,
        prompt: &str,
        model: &str,
        args: &[&str],
    ) -> Command {
        let mut c = self.command(claude);
        c.args(["-p", prompt, "--model", model])
            .args(args)
            .env("ANTHROPIC_API_KEY", "sk-ant-test")
            .env("NODE_EXTRA_CA_CERTS", self.daemon_ca())
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
        if self.mock.port() != 443 {
            c.env(
                "ANTHROPIC_BASE_URL",
                format!("https://api.anthropic.com:{}", self.mock.port()),
            );
        }
        c
    }

    /// `codex exec --skip-git-repo-check -m MODEL ARGS… PROMPT` with a fake key, the daemon's
    /// CA and a `CODEX_HOME` whose `config.toml` turns off the update check and analytics
    /// (which would otherwise reach `ab.chatgpt.com` and keep codex alive until it gives up).
    pub fn codex(
        &self,
        codex: &std::path::Path,
        prompt: &str,
        model: &str,
        args: &[&str],
    ) -> Command {
        let codex_home = self.home.path().join("codex-home");
        std::fs::create_dir_all(&codex_home).unwrap();
        let mut config = String::new();
        if self.mock.port() != 443 {
            config.push_str(&format!(
                "openai_base_url = \"https://api.openai.com:{}/v1\"\n",
                self.mock.port()
            ));
        }
        config.push_str("check_for_update_on_startup = false\n[analytics]\nenabled = false\n");
        std::fs::write(codex_home.join("config.toml"), config).unwrap();
        let mut c = self.command(codex);
        c.args(["exec", "--skip-git-repo-check", "-m", model])
            .args(args)
            .arg(prompt)
            .env("CODEX_HOME", &codex_home)
            .env("OPENAI_API_KEY", "sk-test")
            .env("SSL_CERT_FILE", self.daemon_ca());
        c
    }

    /// Runs `cmd` while its tool's connection to `dest` is held: waits for the pending request
    /// (this container, `dest`), allows it, then waits for the agent to exit. Returns the
    /// pending request and the agent's output. Panics with the agent's output if it exits
    /// before asking for `dest`.
    pub async fn run_allowing(&mut self, mut cmd: Command, dest: SocketAddr) -> (Value, Output) {
        let child = cmd.spawn().expect("the agent starts");
        let mut run = tokio::spawn(wait(child));
        let host = dest.ip().to_string();
        let container = self.container.clone();
        let ws = &mut self.ws;
        let asked = async {
            loop {
                let Some(m) = ws.next(AGENT_WAIT).await else {
                    panic!("no pending request for {dest} within {AGENT_WAIT:?}");
                };
                let d = &m["data"];
                if m["type"] == "pending_request.created"
                    && d["destination_host"] == host.as_str()
                    && d["destination_port"] == dest.port()
                    && d["container_name"] == container.as_str()
                {
                    return d.clone();
                }
            }
        };
        let mut pending = tokio::select! {
            p = asked => p,
            out = &mut run => panic!(
                "the agent exited before its tool reached {dest}:\n{}",
                show(&out.unwrap())
            ),
        };
        // The tool call behind the request (`llm_context`) may be attached a moment later, when
        // its LLM call was still being dissected (on a thread at the lowest priority: on a
        // machine busy with a parallel test run, seconds later): read the pending request as a
        // human would see it in the list, for up to 20 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while pending.get("llm_context").is_none() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let list = self.ws.query(json!({"command":"list_pending"})).await;
            if let Some(p) = list["items"]
                .as_array()
                .and_then(|items| items.iter().find(|p| p["id"] == pending["id"]))
            {
                pending = p.clone();
            }
        }
        let r = self
            .ws
            .cmd(json!({"command":"allow","pending_id":pending["id"]}))
            .await;
        assert_eq!(r["type"], "command_success", "{r}");
        let out = run.await.unwrap();
        (pending, out)
    }

    /// Runs `cmd` to its end.
    pub async fn run(&self, mut cmd: Command) -> Output {
        wait(cmd.spawn().expect("the agent starts")).await
    }

    /// Every transaction recorded for `host` (oldest first), once there are at least `n`
    /// (waits up to 10 s, then returns what there is).
    pub async fn transactions(&mut self, host: &str, n: usize) -> Vec<Value> {
        self.transactions_until(host, |rows| rows.len() >= n).await
    }

    /// Every transaction recorded for `host` (oldest first), once `done` says the list is
    /// complete (waits up to 20 s, then returns what there is). A count alone can be met early
    /// when an agent retries: the recording of a request is finished after its response ends.
    pub async fn transactions_until(
        &mut self,
        host: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let ws = &mut self.ws;
        let got = crate::wait::within(
            Duration::from_secs(20),
            Duration::from_millis(100),
            async || {
                let page = ws
                    .query(json!({"command":"list_activity","kind":"transaction",
                                  "destination":host,"limit":1000}))
                    .await;
                let mut items = page["items"].as_array().cloned().unwrap_or_default();
                items.reverse();
                if done(&items) { Ok(items) } else { Err(items) }
            },
        )
        .await;
        got.unwrap_or_else(|items| items)
    }

    /// `get_transaction` (bodies included).
    pub async fn transaction(&mut self, id: &Value) -> Value {
        self.ws
            .query(json!({"command":"get_transaction","transaction_id":id}))
            .await
    }
}

async fn wait(child: Child) -> Output {
    match tokio::time::timeout(AGENT_WAIT, child.wait_with_output()).await {
        Ok(out) => out.unwrap(),
        Err(_) => panic!("the agent did not finish within {AGENT_WAIT:?}"),
    }
}

/// An agent's exit status and output, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
