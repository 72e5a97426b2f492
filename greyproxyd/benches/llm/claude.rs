//! A synthetic Claude Code session for the LLM benchmarks (`benches/llm.rs` and the `llm`
//! section of `benches/proxy.rs`), shaped like the captured one: every request is fixture 383's
//! (`tests/fixtures/llm/383.json`: its 16 KB system prompt, its tools, its `metadata.user_id`
//! with the session, its headers) carrying the whole history so far, as the real client
//! sends it; every answer is an Anthropic SSE stream of 20 events (message_start with usage,
//! a thinking block, a text block, a `tool_use` block whose arguments come in
//! `input_json_delta` chunks, message_delta with the stop reason and cumulative usage,
//! message_stop). Seven calls of eight end with a tool call whose result opens the next
//! request; the eighth answers, and the next request starts a turn with a new prompt.

use serde_json::{Value, json};

/// The Claude Code fixture the requests are built from.
pub fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llm/383.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The fixture's request headers (a JSON object of name → [values]) as a list of pairs.
pub fn headers(fixture: &Value) -> Vec<(String, String)> {
    let raw = fixture["request_headers"].as_str().unwrap();
    let map: serde_json::Map<String, Value> = serde_json::from_str(raw).unwrap();
    map.into_iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
        .flat_map(|(k, v)| {
            let vals: Vec<String> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect();
            vals.into_iter().map(move |s| (k.clone(), s))
        })
        .collect()
}

/// A session id in the shape Claude Code puts in `metadata.user_id` (a UUID), from a number.
pub fn session_uuid(n: u64) -> String {
    let h = format!("{n:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// One session: the request prefix (everything but the messages) and the history so far.
pub struct Session {
    prefix: String,
    messages: String,
    /// Calls made so far.
    pub calls: u64,
    tag: u64,
}

/// Tools the synthetic assistant calls, in turn, with the argument it gives each.
const TOOLS: [(&str, &str, &str); 4] = [
    ("Read", "file_path", "/work/src/module_"),
    ("Bash", "command", "cargo test -p module_"),
    ("Grep", "pattern", "fn handle_"),
    ("Edit", "file_path", "/work/src/module_"),
];

impl Session {
    /// A new session numbered `n` (its UUID and tool call ids derive from it), starting from
    /// the fixture's own two opening user messages.
    pub fn new(fixture: &Value, n: u64) -> Session {
        let mut body: Value =
            serde_json::from_str(fixture["request_body"].as_str().unwrap()).unwrap();
        let user_id = body["metadata"]["user_id"].as_str().unwrap().to_owned();
        let at = user_id.find("_session_").unwrap() + "_session_".len();
        body["metadata"]["user_id"] = json!(format!("{}{}", &user_id[..at], session_uuid(n)));
        let opening = body["messages"].as_array().unwrap().clone();
        let map = body.as_object_mut().unwrap();
        map.remove("messages");
        let mut prefix = serde_json::to_string(&body).unwrap();
        prefix.pop(); // the closing brace
        prefix.push_str(",\"messages\":[");
        let messages = opening
            .iter()
            .map(|m| serde_json::to_string(m).unwrap())
            .collect::<Vec<_>>()
            .join(",");
        Session {
            prefix,
            messages,
            calls: 0,
            tag: n,
        }
    }

    /// The next request's body: the whole history so far.
    pub fn request(&self) -> String {
        let mut b = String::with_capacity(self.prefix.len() + self.messages.len() + 2);
        b.push_str(&self.prefix);
        b.push_str(&self.messages);
        b.push_str("]}");
        b
    }

    /// Whether call `k` (from 1) ends with a tool call (else it answers, ending the turn).
    fn uses_tool(k: u64) -> bool {
        !k.is_multiple_of(8)
    }

    fn tool_id(&self, k: u64) -> String {
        format!("toolu_{:08x}{:012}", self.tag, k)
    }

    /// The answer to call `k` (from 1) of this session, as the API streams it.
    pub fn response(&self, k: u64) -> String {
        sse(k, Self::uses_tool(k).then(|| self.tool_id(k)))
    }

    /// Appends call `k`'s answer and what the client sends after it (the tool's result, or
    /// the next prompt) to the history.
    pub fn answered(&mut self, k: u64) {
        self.calls = self.calls.max(k);
        let text = answer_text(k);
        let assistant = if Self::uses_tool(k) {
            let (name, key, value) = tool(k);
            json!({"role":"assistant","content":[
                {"type":"text","text":text},
                {"type":"tool_use","id":self.tool_id(k),"name":name,"input":{key:value}}]})
        } else {
            json!({"role":"assistant","content":[{"type":"text","text":text}]})
        };
        let user = if Self::uses_tool(k) {
            json!({"role":"user","content":[{"type":"tool_result","tool_use_id":self.tool_id(k),
                "content":format!("fn handle_{k}(req: Request) -> Response {{\n    route(req)\n}}\n")}]})
        } else {
            json!({"role":"user","content":[{"type":"text",
                "text":format!("Good. Now refactor module {} the same way and run its tests.", k / 8 + 1)}]})
        };
        for m in [assistant, user] {
            self.messages.push(',');
            self.messages.push_str(&serde_json::to_string(&m).unwrap());
        }
    }
}

fn tool(k: u64) -> (&'static str, &'static str, String) {
    let (name, key, stem) = TOOLS[(k % 4) as usize];
    let value = if key == "pattern" {
        format!("{stem}{k}")
    } else if name == "Bash" {
        format!("{stem}{}", k / 8)
    } else {
        format!("{stem}{}.rs", k / 8)
    };
    (name, key, value)
}

fn answer_text(k: u64) -> String {
    if Session::uses_tool(k) {
        format!(
            "Let me look at the next piece of module {} before changing it.",
            k / 8
        )
    } else {
        format!(
            "Done: module {} now routes every request through `route`, and its tests pass.",
            k / 8
        )
    }
}

/// An Anthropic Messages SSE stream for call `k` ending with the tool call `tool_id` (20
/// events), or with an answer when `None` (15); usage grows with `k` like a growing context's.
pub fn sse(k: u64, tool_id: Option<String>) -> String {
    let mut out = String::with_capacity(6 * 1024);
    let mut ev = |name: &str, data: Value| {
        out.push_str("event: ");
        out.push_str(name);
        out.push_str("\ndata: ");
        out.push_str(&data.to_string());
        out.push_str("\n\n");
    };
    let (read, write) = (12_000 + 300 * k, 300);
    ev(
        "message_start",
        json!({"type":"message_start","message":{"model":"claude-opus-4-6",
            "id":format!("msg_01Bench{k:016}"),"type":"message","role":"assistant","content":[],
            "stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,
            "cache_creation_input_tokens":write,"cache_read_input_tokens":read,
            "cache_creation":{"ephemeral_5m_input_tokens":write,"ephemeral_1h_input_tokens":0},
            "output_tokens":1,"service_tier":"standard"}}}),
    );
    ev(
        "content_block_start",
        json!({"type":"content_block_start","index":0,
            "content_block":{"type":"thinking","thinking":"","signature":""}}),
    );
    ev("ping", json!({"type":"ping"}));
    for part in [
        "The user wants the module refactored; ",
        "I should read it first and check the tests.",
    ] {
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,
                "delta":{"type":"thinking_delta","thinking":part}}),
        );
    }
    ev(
        "content_block_delta",
        json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta",
            "signature":"EqQBCkgIBhABGAIiQL0qL6bZ2bCtK1mJd8m7Lr5w2QJj9XkzqW3pT1nY7Hc0Vt6Jm4s"}}),
    );
    ev(
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    );
    ev(
        "content_block_start",
        json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
    );
    let text = answer_text(k);
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    for chunk in words.chunks(words.len().div_ceil(4)) {
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,
                "delta":{"type":"text_delta","text":chunk.concat()}}),
        );
    }
    ev(
        "content_block_stop",
        json!({"type":"content_block_stop","index":1}),
    );
    let stop = if let Some(id) = &tool_id {
        let (name, key, value) = tool(k);
        ev(
            "content_block_start",
            json!({"type":"content_block_start","index":2,
                "content_block":{"type":"tool_use","id":id,"name":name,"input":{}}}),
        );
        let args = json!({ key: value }).to_string();
        let (a, b) = args.split_at(args.len() / 2);
        for part in ["", a, b] {
            ev(
                "content_block_delta",
                json!({"type":"content_block_delta","index":2,
                    "delta":{"type":"input_json_delta","partial_json":part}}),
            );
        }
        ev(
            "content_block_stop",
            json!({"type":"content_block_stop","index":2}),
        );
        "tool_use"
    } else {
        "end_turn"
    };
    ev(
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null},
            "usage":{"input_tokens":3,"cache_creation_input_tokens":write,
            "cache_read_input_tokens":read,"output_tokens":90 + k % 50}}),
    );
    ev("message_stop", json!({"type":"message_stop"}));
    out
}
