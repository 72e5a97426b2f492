//! LLM calls made with curl through a daemon to the mock, as an agent would make them: the
//! request as container `dev`, trusting the daemon's CA, to an API URL whose `:443` becomes the
//! mock's port when the mock could not bind 443.

use serde_json::{Value, json};

use super::LlmMock;
use super::script::CLAUDE_MODEL;
use crate::daemon::Daemon;
use crate::fetch::fetch;

/// The container name the calls carry (proxy user name).
pub const CONTAINER: &str = "dev";

/// POSTs `body` (JSON) to `url` through `d` as container [`CONTAINER`] with user agent `ua`;
/// asserts a 200 (with the daemon's log in the message).
pub async fn post(d: &Daemon, mock: &LlmMock, url: &str, ua: &str, body: &Value) {
    let proxy = format!("http://{CONTAINER}:x@{}", d.http.unwrap());
    let ca = d.state_dir().join("ca-cert.pem").display().to_string();
    let url = url.replace(":443", &format!(":{}", mock.port()));
    let ua = format!("user-agent: {ua}");
    let body = body.to_string();
    let args = [
        "-x",
        &proxy,
        "--cacert",
        &ca,
        "-H",
        "content-type: application/json",
        "-H",
        &ua,
        "--data-binary",
        &body,
    ];
    let r = fetch(&args, &[&url]).await;
    assert_eq!(r.status(), 200, "{r:?}\n{}", d.log());
}

/// A Claude Code `/v1/messages` body of session `session` whose latest user message is
/// `prompt`: streamed, a long system prompt, the `Bash` tool offered.
pub fn claude_code_body(session: &str, prompt: &str) -> Value {
    json!({"model": CLAUDE_MODEL, "stream": true, "max_tokens": 1024,
        "metadata": {"user_id": format!("user_ab12_account_5a3241c6-4cbe-47e2-a7d3-981f6bf69be8_session_{session}")},
        "system": [{"type":"text","text":"You are Claude Code. ".repeat(600)}],
        "tools": [{"name":"Bash","input_schema":{}}],
        "messages": [{"role":"user","content":prompt}]})
}
