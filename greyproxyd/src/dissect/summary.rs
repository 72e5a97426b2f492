//! One-line summaries of tool calls (`Bash: npm install left-pad`, `src/main.rs`, `pattern: foo
//! in src`), the bounded previews every dissector cuts text with, and the [`ToolUse`] builder
//! that puts them together. The per-tool rules follow greyproxy's summaries, which users know,
//! with one change: for shell tools the command wins over the model's own description, because
//! the command is what a human deciding on a held connection must see.

use greyproxy_protocol::llm::ToolCallInfo;
use serde_json::Value;

use super::model::ToolUse;

/// Characters of the arguments kept in [`ToolCallInfo::input_preview`].
pub(crate) const INPUT_PREVIEW_CHARS: usize = 300;
/// Characters of a one-line summary.
const SUMMARY_CHARS: usize = 80;
/// Bytes of a spawn prompt kept for linking a subagent (longer ones are hashed whole by the
/// assembler only up to this point; prompts that long are unique well before it).
const SPAWN_PROMPT_BYTES: usize = 64 * 1024;

/// The first `max_chars` characters of `s`, with `...` appended when something was cut.
pub(crate) fn preview(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// A tool call from parsed arguments.
pub(crate) fn tool_use(id: &str, name: &str, input: &Value) -> ToolUse {
    let text = match input {
        Value::Null => String::new(),
        v => v.to_string(),
    };
    ToolUse {
        info: ToolCallInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            summary: tool_summary(name, input),
            input_preview: preview(&text, INPUT_PREVIEW_CHARS),
        },
        spawn_prompt: spawn_prompt(name, input),
    }
}

/// A tool call from its arguments as JSON text, which may be invalid or cut: parsed when
/// possible, else summarised from the raw text.
pub(crate) fn tool_use_raw(id: &str, name: &str, arguments: &str) -> ToolUse {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v) => tool_use(id, name, &v),
        Err(_) => ToolUse {
            info: ToolCallInfo {
                id: id.to_owned(),
                name: name.to_owned(),
                summary: one_line(arguments, SUMMARY_CHARS),
                input_preview: preview(arguments, INPUT_PREVIEW_CHARS),
            },
            spawn_prompt: None,
        },
    }
}

/// True for tools that start a subagent.
pub(crate) fn is_spawn_tool(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "agent" | "task" | "spawn_agent"
    )
}

fn spawn_prompt(name: &str, input: &Value) -> Option<String> {
    if !is_spawn_tool(name) {
        return None;
    }
    let p = ["prompt", "message", "task", "instructions"]
        .iter()
        .find_map(|k| str_arg(input, k))?;
    let mut end = p.len().min(SPAWN_PROMPT_BYTES);
    while !p.is_char_boundary(end) {
        end -= 1;
    }
    Some(p[..end].to_owned())
}

/// The one-line summary of a tool call.
pub(crate) fn tool_summary(name: &str, input: &Value) -> String {
    let s = |k: &str| str_arg(input, k);
    let lower = name.to_ascii_lowercase();
    let found = match lower.as_str() {
        "read" | "read_file" | "edit" | "multiedit" | "write" | "write_file" | "replace"
        | "notebookedit" => ["file_path", "filePath", "path", "notebook_path"]
            .iter()
            .find_map(|k| s(k))
            .map(short_path),
        "apply_patch" => s("input")
            .or_else(|| s("patch"))
            .map(patch_summary)
            .or_else(|| input.as_str().map(patch_summary)),
        "bash" | "shell" | "exec_command" | "run_shell_command" | "local_shell" => {
            command_text(input).or_else(|| s("description").map(str::to_owned))
        }
        "grep" | "grep_search" | "search_file_content" => s("pattern").map(|p| match s("path") {
            Some(path) if !path.is_empty() => format!("pattern: {p} in {}", basename(path)),
            _ => format!("pattern: {p}"),
        }),
        "glob" => s("pattern").map(str::to_owned),
        "agent" | "task" | "spawn_agent" => s("description")
            .or_else(|| s("prompt"))
            .or_else(|| s("message"))
            .map(str::to_owned),
        "toolsearch" => s("query").map(str::to_owned),
        "webfetch" | "web_fetch" => s("url").map(str::to_owned),
        "websearch" | "web_search" | "google_web_search" => s("query").map(str::to_owned),
        "skill" => s("name").or_else(|| s("skill")).map(str::to_owned),
        _ => None,
    };
    let text = found.unwrap_or_else(|| generic_args(input));
    one_line(&text, SUMMARY_CHARS)
}

fn str_arg<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key)?.as_str()
}

/// A shell command as a string: `command` / `cmd` as text, or an argv array (for
/// `["bash", "-lc", "npm test"]` the script itself).
fn command_text(input: &Value) -> Option<String> {
    let v = input.get("command").or_else(|| input.get("cmd"))?;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            match parts.as_slice() {
                [sh, flag, script] if is_shell(sh) && flag.starts_with('-') => {
                    Some((*script).to_owned())
                }
                _ => Some(parts.join(" ")),
            }
        }
        _ => None,
    }
}

fn is_shell(s: &str) -> bool {
    matches!(basename(s), "bash" | "sh" | "zsh")
}

/// `dir/file` of a path.
fn short_path(p: &str) -> String {
    let mut parts = p.trim_end_matches('/').rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(file), Some(dir)) if !dir.is_empty() => format!("{dir}/{file}"),
        (Some(file), _) => file.to_owned(),
        _ => p.to_owned(),
    }
}

fn basename(p: &str) -> &str {
    p.trim_end_matches('/').rsplit('/').next().unwrap_or(p)
}

/// The file of the first `*** Add/Update/Delete File:` line of a patch.
fn patch_summary(patch: &str) -> String {
    for line in patch.lines().take(5) {
        if let Some(rest) = line.strip_prefix("*** ")
            && let Some((_, path)) = rest.split_once(": ")
        {
            return basename(path.trim()).to_owned();
        }
    }
    preview(patch, 60)
}

/// `k=v` for the short string arguments.
fn generic_args(input: &Value) -> String {
    let Some(map) = input.as_object() else {
        return match input {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
    };
    map.iter()
        .filter_map(|(k, v)| {
            v.as_str()
                .filter(|s| s.chars().count() <= 40)
                .map(|s| (k, s))
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whitespace runs (newlines included) folded to one space, then cut.
fn one_line(s: &str, max_chars: usize) -> String {
    let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
    preview(&folded, max_chars)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_per_tool() {
        let cases = [
            (
                "Read",
                json!({"file_path": "/repo/src/main.rs"}),
                "src/main.rs",
            ),
            ("edit", json!({"filePath": "main.rs"}), "main.rs"),
            (
                "Bash",
                json!({"command": "npm install left-pad", "description": "Install"}),
                "npm install left-pad",
            ),
            ("Bash", json!({"description": "List files"}), "List files"),
            (
                "exec_command",
                json!({"cmd": ["bash", "-lc", "cargo test\n--all"]}),
                "cargo test --all",
            ),
            ("shell", json!({"command": ["ls", "-la"]}), "ls -la"),
            (
                "Grep",
                json!({"pattern": "fn main", "path": "/repo/src/"}),
                "pattern: fn main in src",
            ),
            ("Grep", json!({"pattern": "x"}), "pattern: x"),
            ("Glob", json!({"pattern": "**/*.rs"}), "**/*.rs"),
            (
                "Agent",
                json!({"description": "Find tests", "prompt": "long"}),
                "Find tests",
            ),
            (
                "WebFetch",
                json!({"url": "https://x.dev/a"}),
                "https://x.dev/a",
            ),
            ("WebSearch", json!({"query": "rust sse"}), "rust sse"),
            ("Skill", json!({"skill": "pdf"}), "pdf"),
            (
                "apply_patch",
                json!({"input": "*** Begin Patch\n*** Update File: src/lib.rs\n@@"}),
                "lib.rs",
            ),
            (
                "custom",
                json!({"a": "1", "b": 2, "long": "x".repeat(41)}),
                "a=1",
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(tool_summary(name, &input), want, "{name} {input}");
        }
    }

    #[test]
    fn summaries_are_one_bounded_line() {
        let s = tool_summary("Bash", &json!({"command": "x".repeat(500)}));
        assert_eq!(s.chars().count(), SUMMARY_CHARS + 3);
        assert!(s.ends_with("..."));
    }

    #[test]
    fn previews_cut_on_char_boundaries() {
        assert_eq!(preview("héllo", 2), "hé...");
        assert_eq!(preview("héllo", 5), "héllo");
        assert_eq!(preview("", 0), "");
    }

    #[test]
    fn raw_arguments_parse_or_fall_back() {
        let t = tool_use_raw("c1", "Bash", r#"{"command":"ls"}"#);
        assert_eq!(t.info.summary, "ls");
        let t = tool_use_raw("c2", "Bash", r#"{"command":"ls"#);
        assert_eq!(t.info.summary, r#"{"command":"ls"#);
        assert_eq!(t.info.id, "c2");
        let big = format!(r#"{{"command":"{}"}}"#, "y".repeat(100_000));
        let t = tool_use_raw("c3", "Bash", &big);
        assert!(t.info.input_preview.chars().count() <= INPUT_PREVIEW_CHARS + 3);
    }

    #[test]
    fn spawn_prompts_only_for_spawning_tools() {
        let t = tool_use(
            "t",
            "Task",
            &json!({"prompt": "Find the bug", "description": "d"}),
        );
        assert_eq!(t.spawn_prompt.as_deref(), Some("Find the bug"));
        let t = tool_use("t", "Bash", &json!({"prompt": "x"}));
        assert_eq!(t.spawn_prompt, None);
        let t = tool_use("t", "spawn_agent", &json!({"message": "m"}));
        assert_eq!(t.spawn_prompt.as_deref(), Some("m"));
    }
}
