//! The `--once` commands of the LLM layer: `conversations`, `conversation ID`, `calls` and
//! `usage`. `--json` prints what the daemon sent (lists as one array over the pages read);
//! tables count tokens exactly with thousands separators and costs in dollars, and everything
//! a model or a peer wrote is escaped. A daemon without the layer is a refusal (exit 1) that
//! says so.

use std::io::Write;
use std::time::SystemTime;

use greyproxy_protocol::Command;
use greyproxy_protocol::command::{
    ConversationIdArgs, ListConversationsArgs, ListLlmCallsArgs, UsageSummaryArgs,
};
use greyproxy_protocol::llm::{
    Conversation, ConversationStatus, ConversationSummary, LlmCall, LlmThread, PriceState,
    SessionSource, Step, Turn, UsageRow,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ExitCode, Failure, io_failure, print_json, query};
use crate::cli::{OnceCmd, UsageBy};
use crate::client::Connection;
use crate::format::{age, ellipsize, text_table};
use crate::llm_text::{
    UsageSummary, dollars, escape_line, escape_text, millis, percent, thousands,
};

/// Largest page asked for (the daemon's maximum).
const PAGE: usize = 1000;

/// A query of the LLM layer: a daemon that predates it says "unknown command", which is
/// worded for what it means.
async fn llm_query(conn: &mut Connection, c: Command) -> Result<Value, Failure> {
    query::<Value>(conn, c).await.map_err(|f| {
        if f.code == ExitCode::Refused && f.message.starts_with("unknown command") {
            Failure::new(
                ExitCode::Refused,
                format!(
                    "this greyproxyd has no LLM layer (it predates it): {}",
                    f.message
                ),
            )
        } else {
            f
        }
    })
}

fn decode<T: DeserializeOwned>(v: Value) -> Result<T, Failure> {
    serde_json::from_value(v)
        .map_err(|e| Failure::new(ExitCode::Refused, format!("unexpected result: {e}")))
}

/// Runs one of the four commands.
pub(super) async fn run(
    conn: &mut Connection,
    cmd: &OnceCmd,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match cmd {
        OnceCmd::Conversations { container, limit } => {
            let items = conversations(conn, container.clone(), *limit).await?;
            if json {
                return print_json(out, &items);
            }
            let typed: Vec<ConversationSummary> = decode(Value::Array(items))?;
            print_conversations(out, &typed, SystemTime::now())
        }
        OnceCmd::Conversation { id } => {
            let args = ConversationIdArgs {
                conversation_id: id.clone(),
            };
            let v = llm_query(conn, Command::GetConversation(args)).await?;
            if json {
                return print_json(out, &v);
            }
            let c = serde_json::from_value::<greyproxy_protocol::llm::Conversation>(v)
                .map_err(|e| Failure::new(ExitCode::Refused, format!("unexpected result: {e}")))?;
            print_conversation(out, &c)
        }
        OnceCmd::Calls {
            conversation,
            limit,
        } => {
            let items = calls(conn, conversation.clone(), *limit).await?;
            if json {
                return print_json(out, &items);
            }
            print_calls(out, &decode::<Vec<LlmCall>>(Value::Array(items))?)
        }
        OnceCmd::Usage { by, since } => {
            let args = UsageSummaryArgs {
                group_by: Some(by.wire().into()),
                since: since.clone(),
                ..UsageSummaryArgs::default()
            };
            let v = llm_query(conn, Command::UsageSummary(args)).await?;
            if json {
                return print_json(out, &v);
            }
            print_usage(out, *by, &decode(v)?)
        }
        _ => Err(Failure::new(ExitCode::Usage, "unsupported command")),
    }
}

/// Up to `limit` conversations, latest activity first, page by page.
async fn conversations(
    conn: &mut Connection,
    container: Option<String>,
    limit: usize,
) -> Result<Vec<Value>, Failure> {
    let mut all = Vec::new();
    let mut before = None;
    while all.len() < limit {
        let args = ListConversationsArgs {
            container: container.clone(),
            before: before.take(),
            limit: Some((limit - all.len()).min(PAGE)),
            ..ListConversationsArgs::default()
        };
        let mut page = llm_query(conn, Command::ListConversations(args)).await?;
        let items = match page["conversations"].take() {
            Value::Array(v) => v,
            _ => Vec::new(),
        };
        let empty = items.is_empty();
        all.extend(items);
        match page["next_before"].as_str() {
            Some(b) if page["has_more"] == true && !empty => before = Some(b.to_string()),
            _ => break,
        }
    }
    all.truncate(limit);
    Ok(all)
}

/// Up to `limit` calls, newest first, page by page.
async fn calls(
    conn: &mut Connection,
    conversation_id: Option<String>,
    limit: usize,
) -> Result<Vec<Value>, Failure> {
    let mut all: Vec<Value> = Vec::new();
    let mut before_id = None;
    while all.len() < limit {
        let args = ListLlmCallsArgs {
            conversation_id: conversation_id.clone(),
            before_id,
            limit: Some((limit - all.len()).min(PAGE)),
            ..ListLlmCallsArgs::default()
        };
        let mut page = llm_query(conn, Command::ListLlmCalls(args)).await?;
        let items = match page["calls"].take() {
            Value::Array(v) => v,
            _ => Vec::new(),
        };
        let last = items.last().and_then(|c| c["id"].as_u64());
        all.extend(items);
        match last {
            Some(id) if page["has_more"] == true => before_id = Some(id),
            _ => break,
        }
    }
    all.truncate(limit);
    Ok(all)
}

fn status_word(s: ConversationStatus) -> &'static str {
    match s {
        ConversationStatus::InProgress => "in progress",
        ConversationStatus::Answered => "answered",
        ConversationStatus::Incomplete => "incomplete",
        _ => "?",
    }
}

/// `$0.0222`, and the unpriced calls beside it.
fn cost(micro: u64, unpriced: u64) -> String {
    match unpriced {
        0 => dollars(micro),
        n => format!("{} +{n} unpriced", dollars(micro)),
    }
}

/// `2026-11-22 10:00:00` from RFC 3339.
fn when(ts: &str) -> String {
    match (ts.get(..10), ts.get(11..19)) {
        (Some(d), Some(t)) => format!("{d} {t}"),
        _ => escape_line(ts),
    }
}

/// The human table of `--once conversations`.
pub(crate) fn print_conversations(
    out: &mut dyn Write,
    items: &[ConversationSummary],
    now: SystemTime,
) -> Result<(), Failure> {
    if items.is_empty() {
        return writeln!(out, "no conversations").map_err(io_failure);
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|c| {
            let t = &c.totals;
            vec![
                escape_line(&c.id),
                status_word(c.status).into(),
                escape_line(&c.container_name),
                c.client.as_str().into(),
                escape_line(c.models.first().map_or("-", String::as_str)),
                c.turns.to_string(),
                thousands(t.calls),
                thousands(t.usage.input_tokens),
                thousands(t.usage.output_tokens),
                cost(t.cost_micro_usd, t.unpriced_calls),
                age(&c.last_activity, now),
                ellipsize(&escape_line(&c.title), 50),
            ]
        })
        .collect();
    let header = [
        "ID",
        "STATUS",
        "CONTAINER",
        "CLIENT",
        "MODEL",
        "TURNS",
        "CALLS",
        "INPUT",
        "OUTPUT",
        "COST",
        "LAST",
        "TITLE",
    ];
    write!(out, "{}", text_table(&header, &rows)).map_err(io_failure)
}

/// The human table of `--once calls`.
pub(crate) fn print_calls(out: &mut dyn Write, items: &[LlmCall]) -> Result<(), Failure> {
    if items.is_empty() {
        return writeln!(out, "no LLM calls").map_err(io_failure);
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|c| {
            let u = c.usage.unwrap_or_default();
            let price = match (c.cost.state, c.cost.micro_usd) {
                (PriceState::Priced, Some(m)) => dollars(m),
                (PriceState::Unpriced, _) => "unpriced".into(),
                _ => "—".into(),
            };
            let model = c.model_answered.as_ref().or(c.model_requested.as_ref());
            let mut stop = match (&c.error, &c.stop_reason) {
                (Some(e), _) => format!("error: {e}"),
                (None, Some(s)) => s.clone(),
                (None, None) => "—".into(),
            };
            for t in &c.tool_calls {
                stop.push_str(&format!(" · {}: {}", t.name, t.summary));
            }
            vec![
                c.id.to_string(),
                when(&c.timestamp),
                escape_line(&c.container_name),
                c.client.as_str().into(),
                escape_line(model.map_or("-", String::as_str)),
                thousands(u.input_tokens),
                thousands(u.cache_read_tokens),
                thousands(u.output_tokens),
                price,
                millis(c.ttft_ms),
                millis(c.duration_ms),
                ellipsize(&escape_line(&stop), 60),
            ]
        })
        .collect();
    let header = [
        "ID",
        "TIME",
        "CONTAINER",
        "CLIENT",
        "MODEL",
        "INPUT",
        "CACHED",
        "OUTPUT",
        "COST",
        "TTFT",
        "DURATION",
        "STOP",
    ];
    write!(out, "{}", text_table(&header, &rows)).map_err(io_failure)
}

fn usage_cells(key: String, r: &UsageRow) -> Vec<String> {
    let t = &r.totals;
    vec![
        key,
        thousands(t.calls),
        thousands(t.usage.input_tokens),
        thousands(t.usage.cache_read_tokens),
        thousands(t.usage.output_tokens),
        dollars(t.cost_micro_usd),
        thousands(t.unpriced_calls),
        percent(r.cache_hit_ratio, t.usage.input_tokens > 0),
        millis(r.ttft_p50_ms),
    ]
}

/// The human table of `--once usage`: one row per group (by day in date order, else
/// costliest first, as the daemon sends them), then the total.
pub(crate) fn print_usage(
    out: &mut dyn Write,
    by: UsageBy,
    s: &UsageSummary,
) -> Result<(), Failure> {
    if s.rows.is_empty() {
        return writeln!(out, "no LLM calls").map_err(io_failure);
    }
    let mut rows: Vec<&UsageRow> = s.rows.iter().collect();
    if by == UsageBy::Day {
        rows.sort_by(|a, b| a.key.cmp(&b.key));
    }
    let mut table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| usage_cells(escape_line(&r.key), r))
        .collect();
    table.push(usage_cells("TOTAL".into(), &s.total));
    let key = by.wire().to_uppercase();
    let header = [
        key.as_str(),
        "CALLS",
        "INPUT",
        "CACHED",
        "OUTPUT",
        "COST",
        "UNPRICED",
        "CACHE HIT",
        "TTFT P50",
    ];
    write!(out, "{}", text_table(&header, &table)).map_err(io_failure)
}

/// `label         value` lines, values of several lines indented under the first.
fn field(out: &mut String, label: &str, value: &str) {
    for (i, line) in value.split('\n').enumerate() {
        let l = if i == 0 { label } else { "" };
        out.push_str(format!("{l:<14} {line}").trim_end());
        out.push('\n');
    }
}

fn steps(out: &mut String, s: &Step) {
    let pad = |out: &mut String, label: &str, text: &str| {
        for (i, line) in escape_text(text).split('\n').enumerate() {
            let l = if i == 0 { label } else { "" };
            out.push_str(format!("  {l:<11} {line}").trim_end());
            out.push('\n');
        }
    };
    if !s.thinking_preview.is_empty() {
        pad(out, "thinking", &s.thinking_preview);
    }
    if !s.text.is_empty() {
        pad(out, "assistant", &s.text);
    }
    for t in &s.tool_calls {
        pad(out, "tool", &format!("{}: {}", t.call.name, t.call.summary));
        if let Some(r) = &t.result_preview {
            let mark = if t.is_error { "✗ error: " } else { "✓ " };
            pad(out, "", &format!("{mark}{r}"));
        } else if t.is_error {
            pad(out, "", "✗ error");
        }
        if let Some(sub) = &t.linked_conversation_id {
            pad(out, "", &format!("↳ subagent {sub}"));
        }
    }
}

fn turn(out: &mut String, t: &Turn) {
    let ids: Vec<String> = t.call_ids.iter().map(u64::to_string).collect();
    out.push_str(&format!(
        "\nTurn {} · {} → {} · calls {}\n",
        t.number,
        when(&t.started_at),
        t.ended_at.get(11..19).unwrap_or(""),
        ids.join(", ")
    ));
    for (i, line) in escape_text(&t.user_prompt).split('\n').enumerate() {
        let l = if i == 0 { "user" } else { "" };
        out.push_str(format!("  {l:<11} {line}").trim_end());
        out.push('\n');
    }
    for s in &t.steps {
        steps(out, s);
    }
}

/// The human form of `--once conversation ID`: the summary, then turn by turn.
pub(crate) fn print_conversation(out: &mut dyn Write, c: &Conversation) -> Result<(), Failure> {
    let s = &c.summary;
    let t = &s.totals;
    let mut o = String::new();
    field(&mut o, "conversation", &escape_line(&s.id));
    if !s.title.is_empty() {
        field(&mut o, "title", &escape_line(&s.title));
    }
    field(&mut o, "status", status_word(s.status));
    field(&mut o, "container", &escape_line(&s.container_name));
    let source = match s.session_source {
        SessionSource::Wire => "from the wire",
        _ => "inferred",
    };
    let thread = match s.thread {
        LlmThread::Main => "main",
        LlmThread::Subagent => "subagent",
        _ => "utility",
    };
    field(
        &mut o,
        "client",
        &format!(
            "{} · {} · session {} ({source}) · {thread} thread",
            s.client.as_str(),
            escape_line(&s.provider),
            escape_line(&s.session_id)
        ),
    );
    if let Some(p) = &s.parent_id {
        let by = s
            .parent_tool_call_id
            .as_deref()
            .map(|t| format!(" (tool call {})", escape_line(t)))
            .unwrap_or_default();
        field(&mut o, "parent", &format!("{}{by}", escape_line(p)));
    }
    let models: Vec<String> = s.models.iter().map(|m| escape_line(m)).collect();
    field(&mut o, "models", &models.join(", "));
    field(
        &mut o,
        "time",
        &format!("{} → {}", when(&s.started_at), when(&s.last_activity)),
    );
    field(
        &mut o,
        "turns",
        &format!("{} · calls {}", s.turns, thousands(t.calls)),
    );
    let u = &t.usage;
    field(
        &mut o,
        "tokens",
        &format!(
            "input {} (cache reads {}, writes {}) · output {} (reasoning {})",
            thousands(u.input_tokens),
            thousands(u.cache_read_tokens),
            thousands(u.cache_write_tokens),
            thousands(u.output_tokens),
            thousands(u.reasoning_tokens)
        ),
    );
    field(&mut o, "cost", &cost(t.cost_micro_usd, t.unpriced_calls));
    let context = match s.context_window {
        Some(w) if w > 0 => format!(
            "{} of {} tokens ({:.0}%)",
            thousands(s.context_tokens),
            thousands(w),
            s.context_tokens as f64 * 100.0 / w as f64
        ),
        _ => format!("{} tokens", thousands(s.context_tokens)),
    };
    field(&mut o, "context", &context);
    if !c.subagents.is_empty() {
        let subs: Vec<String> = c.subagents.iter().map(|x| escape_line(x)).collect();
        field(&mut o, "subagents", &subs.join("\n"));
    }
    for t in &c.turns {
        turn(&mut o, t);
    }
    write!(out, "{o}").map_err(io_failure)
}

#[cfg(test)]
mod tests;
