//! Export from the dashboard (docs/export.md): `E` in the Activity view gathers the daemon's
//! `export` pages for the current filter (its container and destination) and has the runtime
//! write them as a HAR 1.2 file; `y` in a transaction's detail has the runtime copy its curl
//! command to the clipboard with OSC 52, which works over SSH and in tmux.

use greyproxy_protocol::export::{ExportArgs, ExportPage};
use greyproxy_protocol::{Command, Reply, Transaction};
use serde_json::{Value, json};

use super::{App, Effect, Tag, send};

/// Most entries one file gathers from the dashboard (`--once export har` has no limit: it
/// streams).
pub(crate) const HAR_MAX_ENTRIES: usize = 5_000;
/// Entries asked per page.
const PAGE: usize = 500;

/// A HAR file being gathered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HarJob {
    /// Where it goes.
    pub(crate) path: String,
    /// The query (its `before_id` moves page by page).
    args: ExportArgs,
    /// Entries so far, newest first.
    entries: Vec<Value>,
}

/// `greyproxy-<UTC time>.har` for a file written at `now`.
pub(crate) fn har_file_name(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let t = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
    )
    .to_string()
    .replace([':', '-'], "")
    .trim_end_matches('Z')
    .to_owned();
    format!("greyproxy-{t}.har")
}

/// The HAR document of `entries`.
pub(crate) fn har_document(entries: Vec<Value>) -> Value {
    json!({"log": {
        "version": "1.2",
        "creator": {"name": "greytui", "version": env!("CARGO_PKG_VERSION")},
        "pages": [],
        "entries": entries,
    }})
}

impl App {
    /// `E`: starts gathering the filtered transactions.
    pub(super) fn har_start(&mut self) -> Vec<Effect> {
        if self.har.is_some() {
            self.say("a HAR export is already running", true);
            return Vec::new();
        }
        let f = &self.activity.filter;
        let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let args = ExportArgs {
            format: "har".into(),
            container: nonempty(&f.container),
            destination: nonempty(&f.destination),
            limit: Some(PAGE),
            ..Default::default()
        };
        self.har = Some(HarJob {
            path: har_file_name(self.now),
            args: args.clone(),
            entries: Vec::new(),
        });
        self.say("exporting HAR…", false);
        vec![send(Tag::ExportHar, Command::Export(args))]
    }

    /// A page arrived: ask the next one, or hand the file to the runtime.
    pub(super) fn har_page(&mut self, outcome: Result<Reply, String>) -> Vec<Effect> {
        let Some(mut job) = self.har.take() else {
            return Vec::new();
        };
        let page = outcome.and_then(|r| match r {
            Reply::Result { data, .. } => {
                serde_json::from_value::<ExportPage>(data).map_err(|e| e.to_string())
            }
            Reply::Error { error, .. } => Err(error),
            other => Err(format!("unexpected reply {other:?}")),
        });
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                self.say(format!("HAR export failed: {e}"), true);
                return Vec::new();
            }
        };
        let room = HAR_MAX_ENTRIES - job.entries.len();
        let full = page.entries.len() >= room;
        job.entries.extend(page.entries.into_iter().take(room));
        if let Some(next) = page.next_before_id.filter(|_| !full) {
            job.args.before_id = Some(next);
            let args = job.args.clone();
            self.har = Some(job);
            return vec![send(Tag::ExportHar, Command::Export(args))];
        }
        let n = job.entries.len();
        let contents = har_document(job.entries).to_string();
        let note = if full {
            format!(" (the newest {HAR_MAX_ENTRIES}; --once export har has no limit)")
        } else {
            String::new()
        };
        self.say(format!("writing {n} entries to {}{note}", job.path), false);
        vec![Effect::WriteFile {
            path: job.path,
            contents,
        }]
    }

    /// The runtime wrote (or failed to write) a file.
    pub(super) fn wrote(&mut self, path: &str, result: Result<(), String>) {
        match result {
            Ok(()) => self.say(format!("wrote {path}"), false),
            Err(e) => self.say(format!("cannot write {path}: {e}"), true),
        }
    }

    /// `y` in a transaction's detail: its curl command to the clipboard.
    pub(super) fn copy_curl(&mut self) -> Vec<Effect> {
        let t = self
            .activity
            .detail
            .as_ref()
            .and_then(|d| d.full.as_ref())
            .and_then(|f| f.as_ref().ok())
            .and_then(|v| serde_json::from_value::<Transaction>(v.clone()).ok());
        match t {
            Some(t) => {
                let cmd = crate::curl::curl_command(&t);
                self.say(
                    format!("copied the curl command of transaction {} (OSC 52)", t.id),
                    false,
                );
                vec![Effect::Clipboard(cmd)]
            }
            None => {
                self.say("no transaction loaded to copy", true);
                Vec::new()
            }
        }
    }
}
