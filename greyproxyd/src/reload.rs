//! SIGHUP: re-reads the config file and applies what can change without a restart — the MITM
//! bypass list, the extra redaction patterns, the LLM endpoint rules, the hold timeout (unless
//! pinned by the command line) and the `[hosts]` map (under the `--map-host` entries, which
//! win) — as one new [`Live`] snapshot swapped in at once. Open connections are untouched; new
//! holds, tunnels and exchanges use the new settings. Rules live
//! in the store, not in the file, so there is nothing to reload for them. A file that does not
//! parse or validate leaves every setting as it was.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{DEFAULT_HOLD_TIMEOUT, FileConfig};
use crate::live::{Live, LiveCell};
use crate::net::HostMap;

/// What a reload may change, and where the settings come from.
#[derive(Debug)]
pub struct Reloader {
    /// The config file (`None`: started without one; a reload then changes nothing).
    pub(crate) file: Option<PathBuf>,
    /// The hold timeout was given on the command line, which wins over the file.
    pub(crate) hold_timeout_pinned: bool,
    /// The `--map-host` entries: they win over the file's `[hosts]`.
    pub(crate) host_map_pinned: HostMap,
    /// The settings every hold, tunnel and exchange reads.
    pub(crate) live: Arc<LiveCell>,
    /// Endpoint rules created over `/ws`, kept after the configured ones.
    pub(crate) endpoint_rules: Option<Arc<crate::dissect::rules::EndpointRules>>,
}

impl Reloader {
    /// Re-reads the file and applies it; returns a one-line summary. On error nothing changes.
    pub(crate) fn reload(&self) -> anyhow::Result<String> {
        let Some(path) = &self.file else {
            return Ok("no config file: nothing to reload".into());
        };
        let file = FileConfig::load(path)?;
        let bypass = file
            .mitm
            .as_ref()
            .and_then(|m| m.bypass.clone())
            .unwrap_or_default();
        let extra = file
            .capture
            .as_ref()
            .and_then(|c| c.redact_headers.clone())
            .unwrap_or_default();
        let hold = (!self.hold_timeout_pinned)
            .then(|| Duration::from_secs(file.hold_timeout.unwrap_or(DEFAULT_HOLD_TIMEOUT)));
        let llm_rules = file.endpoint_rules();
        let hosts = file.host_map()?.merged(&self.host_map_pinned);
        let summary = format!(
            "reloaded {}: {} bypass globs, {} extra redaction patterns, {} mapped hosts{}",
            path.display(),
            bypass.len(),
            extra.len(),
            hosts.len(),
            hold.map(|h| format!(", hold timeout {}s", h.as_secs()))
                .unwrap_or_default()
        );
        let hold = hold.unwrap_or_else(|| self.live.load().hold_timeout);
        // Everything is validated here, before the one swap.
        // Validated alone first: a bad file must not touch the rules kept for the next reload.
        crate::endpoints::validate(&llm_rules)?;
        let llm_rules = match &self.endpoint_rules {
            Some(r) => r.merged(llm_rules),
            None => llm_rules,
        };
        let next = Live::new(bypass, extra, llm_rules, hold)?.with_hosts(hosts);
        self.live.store(next);
        Ok(summary)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const OLD: &str = "hold_timeout = 5\n[mitm]\nbypass = [\"*.old.example\"]\n\
        [capture]\nredact_headers = [\"x-old\"]\n\
        [hosts]\n\"api.example\" = \"127.0.0.5\"\n\
        [[llm_endpoint]]\nhost = \"old.example\"\npath = \"/v1/x\"\ndecoder = \"openai-chat\"\n";
    const NEW: &str = "hold_timeout = 9\n[mitm]\nbypass = [\"*.new.example\"]\n\
        [capture]\nredact_headers = [\"x-new\"]\n\
        [hosts]\n\"api.example\" = \"127.0.0.6\"\n\
        [[llm_endpoint]]\nhost = \"new.example\"\npath = \"/v1/x\"\ndecoder = \"openai-chat\"\n";

    /// What a reader sees of all five settings, as one tuple (the host map as the address
    /// `api.example` is dialled at).
    fn seen(l: &Live) -> (Vec<String>, bool, bool, u64, Option<String>) {
        (
            l.bypass.clone(),
            l.redactor.is_sensitive("X-New"),
            l.llm.lookup("new.example", "/v1/x", "POST").is_some(),
            l.hold_timeout.as_secs(),
            l.hosts.get("api.example").map(|ip| ip.to_string()),
        )
    }

    fn five(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    fn setup(text: &str, pinned: bool) -> (tempfile::TempDir, Reloader) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("greyproxyd.toml");
        std::fs::write(&file, text).unwrap();
        let reloader = Reloader {
            endpoint_rules: None,
            file: Some(file),
            hold_timeout_pinned: pinned,
            host_map_pinned: HostMap::new(),
            live: LiveCell::new(
                Live::new(vec![], vec![], vec![], Duration::from_secs(30)).unwrap(),
            ),
        };
        reloader.reload().unwrap();
        (dir, reloader)
    }

    #[test]
    fn a_reload_swaps_all_five_settings_at_once() {
        let (dir, r) = setup(OLD, false);
        let held = r.live.load();
        let old = (
            vec!["*.old.example".to_string()],
            false,
            false,
            5,
            five("127.0.0.5"),
        );
        assert_eq!(seen(&held), old);
        std::fs::write(dir.path().join("greyproxyd.toml"), NEW).unwrap();
        let summary = r.reload().unwrap();
        assert!(summary.contains("1 bypass globs"), "{summary}");
        assert!(summary.contains("hold timeout 9s"), "{summary}");
        // A reader that took its snapshot before keeps every old value; the next one gets
        // every new value.
        assert_eq!(seen(&held), old);
        assert_eq!(
            seen(&r.live.load()),
            (
                vec!["*.new.example".to_string()],
                true,
                true,
                9,
                five("127.0.0.6")
            )
        );
    }

    #[test]
    fn a_failed_reload_changes_nothing() {
        let (dir, r) = setup(OLD, false);
        let before = r.live.load();
        let file = dir.path().join("greyproxyd.toml");
        // Each file is valid but for one part, which is checked after the others were read.
        let bad_llm = NEW.replace("host = \"new.example\"", "host = \" \"");
        let bad_redact = NEW.replace("\"x-new\"", "\"x*new\"");
        let bad_host = NEW.replace("\"127.0.0.6\"", "\"127.0.0.x\"");
        for bad in [
            bad_llm,
            bad_redact,
            bad_host,
            "hold_timeout = \"soon\"\n".to_string(),
        ] {
            std::fs::write(&file, &bad).unwrap();
            assert!(r.reload().is_err(), "{bad}");
            let now = r.live.load();
            assert!(Arc::ptr_eq(&before, &now), "{bad}");
            assert_eq!(
                seen(&now),
                (
                    vec!["*.old.example".to_string()],
                    false,
                    false,
                    5,
                    five("127.0.0.5")
                )
            );
        }
    }

    #[test]
    fn a_pinned_hold_timeout_survives_a_reload() {
        let (_dir, r) = setup(NEW, true);
        assert_eq!(
            seen(&r.live.load()),
            (
                vec!["*.new.example".to_string()],
                true,
                true,
                30,
                five("127.0.0.6")
            )
        );
    }

    #[test]
    fn map_host_flags_win_over_the_file_at_every_reload() {
        let (_dir, mut r) = setup(OLD, false);
        r.host_map_pinned = HostMap::from_flags(&["API.example=127.0.0.9".into()]).unwrap();
        let summary = r.reload().unwrap();
        assert!(summary.contains("1 mapped hosts"), "{summary}");
        assert_eq!(seen(&r.live.load()).4, five("127.0.0.9"));
    }
}
