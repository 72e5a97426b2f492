//! "Why was this connection asked for?": each container's latest LLM call and the tool calls it
//! ended with, so that a request held for a human shortly after can name the tool call behind
//! it (docs/llm.md#why-a-connection-was-asked-for). The policy reads it when it creates a pending request; the dissection
//! task writes it after each call.
//!
//! A tool runs as soon as the model's response has arrived, but that response is recorded when
//! the proxy sees its end and dissected from a queue: a held request may come before its call is
//! recorded or dissected. Calls queued but not yet dissected are counted per container, so the
//! policy can wait a while for a context ([`RecentCalls::context_within`]) and attach it late.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use greyproxy_protocol::llm::{LlmContext, ToolCallInfo};
use tokio::sync::Notify;

/// Containers remembered at most (the oldest call is forgotten first).
const MAX_CONTAINERS: usize = 4096;
/// Tool calls remembered per call.
const MAX_TOOL_CALLS: usize = 16;

/// One container's latest call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LatestCall {
    /// Unix seconds when the call's response ended.
    pub(crate) ended_secs: u64,
    /// Conversation of the call.
    pub(crate) conversation_id: String,
    /// Turn of the call.
    pub(crate) turn: u32,
    /// The call.
    pub(crate) call_id: u64,
    /// Tool calls it ended with (empty: it ended with an answer).
    pub(crate) tool_calls: Vec<ToolCallInfo>,
    /// The model's last line of text.
    pub(crate) last_text: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    latest: HashMap<String, LatestCall>,
    in_flight: HashMap<String, u64>,
}

/// Shared between the policy (reads) and the dissection task (writes).
#[derive(Debug)]
pub(crate) struct RecentCalls {
    inner: Mutex<Inner>,
    /// How long after a call its tool calls explain a held request, in seconds.
    window_secs: AtomicU64,
    /// Woken whenever a call is dissected.
    changed: Notify,
}

impl Default for RecentCalls {
    fn default() -> Self {
        RecentCalls::new(120)
    }
}

impl RecentCalls {
    /// Empty, with a window of `window_secs`.
    pub(crate) fn new(window_secs: u64) -> RecentCalls {
        RecentCalls {
            inner: Mutex::new(Inner::default()),
            window_secs: AtomicU64::new(window_secs),
            changed: Notify::new(),
        }
    }

    /// Changes the window (configuration reload).
    pub(crate) fn set_window(&self, secs: u64) {
        self.window_secs.store(secs, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call of `container` was queued for dissection.
    pub(crate) fn queued(&self, container: &str) {
        *self
            .lock()
            .in_flight
            .entry(container.to_owned())
            .or_insert(0) += 1;
    }

    /// A queued call of `container` was dissected (or dropped); `latest` is set when it was an
    /// LLM call of a conversation.
    pub(crate) fn done(&self, container: &str, latest: Option<LatestCall>) {
        {
            let mut g = self.lock();
            if let Some(n) = g.in_flight.get_mut(container) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    g.in_flight.remove(container);
                }
            }
            if let Some(mut l) = latest {
                l.tool_calls.truncate(MAX_TOOL_CALLS);
                let newer = g
                    .latest
                    .get(container)
                    .is_none_or(|old| old.ended_secs <= l.ended_secs);
                if newer {
                    g.latest.insert(container.to_owned(), l);
                }
                if g.latest.len() > MAX_CONTAINERS
                    && let Some(oldest) = g
                        .latest
                        .iter()
                        .min_by_key(|(_, v)| v.ended_secs)
                        .map(|(k, _)| k.clone())
                {
                    g.latest.remove(&oldest);
                }
            }
        }
        self.changed.notify_waiters();
    }

    /// Calls of `container` queued but not dissected yet.
    pub(crate) fn in_flight(&self, container: &str) -> u64 {
        self.lock().in_flight.get(container).copied().unwrap_or(0)
    }

    /// Has `container` made an LLM call the layer knows of, or one queued? Only then is a
    /// context worth waiting for.
    pub(crate) fn active(&self, container: &str) -> bool {
        let g = self.lock();
        g.in_flight.contains_key(container) || g.latest.contains_key(container)
    }

    /// Waits up to `max` for a context for a request of `container` to `host` that had none when
    /// it was held: its call may still be queued for dissection, or not even recorded yet (an
    /// agent can run the tool on the response's last bytes, before the proxy has seen the end of
    /// that response). Answers once no call of `container` is queued and one gives a context;
    /// `now_secs` reads the clock for the window.
    pub(crate) async fn context_within(
        &self,
        container: &str,
        host: &str,
        max: Duration,
        now_secs: impl Fn() -> u64,
    ) -> Option<LlmContext> {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                if self.in_flight(container) == 0
                    && let Some(c) = self.context_for(container, host, now_secs())
                {
                    return c;
                }
                notified.await;
            }
        };
        tokio::time::timeout(max, wait).await.ok()
    }

    /// The context for a request of `container` to `host` held at `now_secs`: the latest call's
    /// tool call that names the host, else its first tool call — if the call ended with tool
    /// calls within the window.
    pub(crate) fn context_for(
        &self,
        container: &str,
        host: &str,
        now_secs: u64,
    ) -> Option<LlmContext> {
        let window = self.window_secs.load(Ordering::Relaxed);
        let g = self.lock();
        let l = g.latest.get(container)?;
        let age = now_secs.saturating_sub(l.ended_secs);
        if age > window {
            return None;
        }
        let host = host.to_ascii_lowercase();
        let names_host = |t: &&ToolCallInfo| {
            !host.is_empty()
                && (t.summary.to_ascii_lowercase().contains(&host)
                    || t.input_preview.to_ascii_lowercase().contains(&host))
        };
        let tool = l
            .tool_calls
            .iter()
            .find(names_host)
            .or_else(|| l.tool_calls.first())?;
        Some(LlmContext {
            conversation_id: l.conversation_id.clone(),
            turn: l.turn,
            call_id: l.call_id,
            tool: tool.name.clone(),
            summary: tool.summary.clone(),
            last_text: l.last_text.clone(),
            age_secs: age,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tool(name: &str, summary: &str) -> ToolCallInfo {
        ToolCallInfo {
            id: format!("id-{name}"),
            name: name.into(),
            summary: summary.into(),
            input_preview: String::new(),
        }
    }

    fn call(ended: u64, tools: Vec<ToolCallInfo>) -> LatestCall {
        LatestCall {
            ended_secs: ended,
            conversation_id: "claude-code:s".into(),
            turn: 2,
            call_id: 7,
            tool_calls: tools,
            last_text: Some("I will install it.".into()),
        }
    }

    #[test]
    fn picks_the_tool_call_naming_the_host_within_the_window() {
        let r = RecentCalls::new(120);
        r.queued("c");
        r.done(
            "c",
            Some(call(
                1000,
                vec![
                    tool("Read", "src/a.rs"),
                    tool("Bash", "curl https://Evil.example/x"),
                ],
            )),
        );
        let ctx = r.context_for("c", "evil.example", 1010).unwrap();
        assert_eq!((ctx.tool.as_str(), ctx.age_secs, ctx.turn), ("Bash", 10, 2));
        assert_eq!(ctx.last_text.as_deref(), Some("I will install it."));
        // Another host: the first tool call.
        assert_eq!(r.context_for("c", "other", 1010).unwrap().tool, "Read");
        // Out of the window, another container, no tool calls: nothing.
        assert!(r.context_for("c", "evil.example", 1121).is_none());
        assert!(r.context_for("d", "evil.example", 1010).is_none());
        r.done("c", Some(call(1100, vec![])));
        assert!(r.context_for("c", "evil.example", 1101).is_none());
        // An older call dissected late does not replace a newer one.
        r.done("c", Some(call(900, vec![tool("Bash", "x")])));
        assert!(r.context_for("c", "x", 1101).is_none());
        r.set_window(0);
        r.done("c", Some(call(1200, vec![tool("Bash", "x")])));
        assert!(r.context_for("c", "x", 1201).is_none());
        assert!(r.context_for("c", "x", 1200).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_context_arriving_after_the_hold_is_found_one_that_never_does_is_not() {
        let r = std::sync::Arc::new(RecentCalls::new(120));
        // Nothing queued, nothing known: gives up at the limit.
        assert!(
            r.context_within("c", "pypi.org", Duration::from_secs(1), || 100)
                .await
                .is_none()
        );
        // The call is recorded and dissected after the request was held.
        let r2 = r.clone();
        let waiter = tokio::spawn(async move {
            r2.context_within("c", "pypi.org", Duration::from_secs(5), || 100)
                .await
        });
        tokio::task::yield_now().await;
        r.queued("c");
        r.done(
            "c",
            Some(call(99, vec![tool("Bash", "pip install x from pypi.org")])),
        );
        let ctx = waiter.await.unwrap().expect("the late call's context");
        assert_eq!(ctx.tool, "Bash");
    }
}
