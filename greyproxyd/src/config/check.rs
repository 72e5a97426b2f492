//! Validation of a parsed config file beyond its syntax: values the TOML types cannot express
//! (addresses, enumerations, minimums, redaction patterns, host mappings), each error naming
//! its key and line.

use super::{FileConfig, parse_addr};
use crate::http::redact::Redactor;

/// A config value that parses as TOML but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("key `{key}`{}: {message}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
pub struct ConfigError {
    /// Dotted key, e.g. `control.auth`.
    pub key: String,
    /// 1-based line of the key in the file, when found.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// The 1-based line where `key` (dotted: `table.key`) is set in `text`, if it can be found.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let (table, name) = match key.rsplit_once('.') {
        Some((t, n)) => (t, n),
        None => ("", key),
    };
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(h) = l.strip_prefix('[') {
            current = h
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            continue;
        }
        let Some((k, _)) = l.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_matches('"');
        let full = if current.is_empty() {
            k.to_string()
        } else {
            format!("{current}.{k}")
        };
        if (current == table && k == name) || full == key {
            return Some(i + 1);
        }
    }
    None
}

impl FileConfig {
    /// Checks the values of a parsed file; `text` is its source, to locate the offending key.
    pub fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            key: key.to_string(),
            line: line_of(text, key),
            message,
        };
        let addrs = [
            ("control_addr", &self.control_addr, false),
            ("http_addr", &self.http_addr, true),
            ("socks_addr", &self.socks_addr, true),
            ("dns_addr", &self.dns_addr, true),
        ];
        for (key, value, allow_off) in addrs {
            if let Some(v) = value {
                parse_addr(v, key, allow_off).map_err(|e| err(key, format!("{e:#}")))?;
            }
        }
        for u in self.dns_upstream.iter().flatten() {
            crate::proxy::dns::upstream::parse_upstream(u)
                .map_err(|e| err("dns_upstream", e.to_string()))?;
        }
        if self.hold_timeout == Some(0) {
            return Err(err("hold_timeout", "must be at least 1 second".into()));
        }
        self.control_auth()
            .map_err(|e| err("control.auth", e.to_string()))?;
        if let Some(m) = self.control.as_ref().and_then(|c| c.socket_mode.as_deref()) {
            super::parse_socket_mode(m)
                .map_err(|e| err("control.socket_mode", format!("{e:#}")))?;
        }
        if let Some(m) = &self.mitm
            && let Some(globs) = &m.bypass
            && globs.iter().any(|g| g.trim().is_empty())
        {
            return Err(err("mitm.bypass", "empty host glob".into()));
        }
        if let Some(entries) = &self.middleware {
            crate::middleware::build_configs(&[], &[], entries)
                .map_err(|e| err("middleware", e.to_string()))?;
        }
        if let Some(rules) = &self.llm_endpoint {
            crate::endpoints::validate(rules).map_err(|e| err("llm_endpoint", e.to_string()))?;
        }
        if let Some(rules) = &self.endpoint_rule {
            crate::endpoints::validate(rules).map_err(|e| err("endpoint_rule", e.to_string()))?;
        }
        let llm = super::LlmSettings::from_file(self.llm.as_ref())
            .map_err(|e| err("llm", format!("{e:#}")))?;
        crate::dissect::price::check_overrides(&llm.prices).map_err(|e| err("llm.price", e))?;
        crate::export::OtlpSettings::from_file(self.export.as_ref()).map_err(|e| {
            let msg = format!("{e:#}");
            match msg.split_once(": ") {
                Some((key, why)) => err(key, why.to_owned()),
                None => err("export", msg.clone()),
            }
        })?;
        for (name, ip) in self.hosts.iter().flatten() {
            let mut one = crate::net::HostMap::new();
            one.insert(name, ip)
                .map_err(|e| err(&format!("hosts.{name}"), e.to_string()))?;
        }
        if let Some(c) = &self.capture {
            if let Some(extra) = &c.redact_headers {
                Redactor::new(extra).map_err(|e| err("capture.redact_headers", e.to_string()))?;
            }
            if c.response_timeout == Some(0) {
                return Err(err(
                    "capture.response_timeout",
                    "must be at least 1 second".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_tables() {
        let t = "hold_timeout = 5\n\n[control]\nauth = \"x\"\n[mitm]\nbypass = []\n";
        assert_eq!(line_of(t, "hold_timeout"), Some(1));
        assert_eq!(line_of(t, "control.auth"), Some(4));
        assert_eq!(line_of(t, "mitm.bypass"), Some(6));
        assert_eq!(line_of(t, "auth"), None);
    }

    #[test]
    fn errors_name_key_and_line() {
        let t = "http_addr = \"off\"\n[control]\nauth = \"basic\"\n";
        let c: FileConfig = toml::from_str(t).unwrap();
        let e = c.validate(t).unwrap_err().to_string();
        assert!(e.contains("control.auth") && e.contains("line 3"), "{e}");
        let t = "hold_timeout = 3\ndns_upstream = [\"1.1.1.1:53\", \"nope\"]\n";
        let c: FileConfig = toml::from_str(t).unwrap();
        let e = c.validate(t).unwrap_err().to_string();
        assert!(e.contains("dns_upstream") && e.contains("line 2"), "{e}");
        let t = "socks_addr = \"localhost\"\n";
        let c: FileConfig = toml::from_str(t).unwrap();
        let e = c.validate(t).unwrap_err().to_string();
        assert!(e.contains("socks_addr") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn host_mappings_are_checked() {
        let t = "[hosts]\n\"api.anthropic.com\" = \"127.0.0.5\"\n\"api.openai.com\" = \"127.0.0.256\"\n";
        let c: FileConfig = toml::from_str(t).unwrap();
        let e = c.validate(t).unwrap_err().to_string();
        assert!(
            e.contains("hosts.api.openai.com") && e.contains("line 3") && e.contains("127.0.0.256"),
            "{e}"
        );
        let t = "[hosts]\n\"\" = \"127.0.0.5\"\n";
        let c: FileConfig = toml::from_str(t).unwrap();
        let e = c.validate(t).unwrap_err().to_string();
        assert!(e.contains("empty host name"), "{e}");
        let t = "[hosts]\n\"api.anthropic.com\" = \"127.0.0.5\"\n";
        let c: FileConfig = toml::from_str(t).unwrap();
        c.validate(t).unwrap();
        let m = c.host_map().unwrap();
        assert_eq!(
            m.get("api.anthropic.com"),
            Some("127.0.0.5".parse().unwrap())
        );
    }

    #[test]
    fn llm_settings_and_prices_are_checked() {
        let check = |t: &str| {
            let c: FileConfig = toml::from_str(t).unwrap();
            c.validate(t).map_err(|e| e.to_string())
        };
        let e = check("[llm]\ncontext_window = \"soon\"\n").unwrap_err();
        assert!(
            e.contains("llm.context_window") && e.contains("soon"),
            "{e}"
        );
        let e =
            check("[llm]\n\n[[llm.price]]\nmodel = \"m\"\ninput = -1\noutput = 2\n").unwrap_err();
        assert!(e.contains("llm.price") && e.contains("input = -1"), "{e}");
        let e = check("[[llm.price]]\nmodel = \"m\"\ncolour = 1\n").unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e =
            check("[[endpoint_rule]]\nhost = \" \"\npath = \"/x\"\ndecoder = \"openai-chat\"\n")
                .unwrap_err();
        assert!(e.contains("endpoint_rule"), "{e}");
        check("[llm]\nenabled = false\nmax_age = \"30d\"\n[[llm.price]]\nmodel = \"new-model\"\ninput = 1.0\noutput = 2.0\n")
            .unwrap();
        let c: FileConfig = toml::from_str("[[endpoint_rule]]\nhost = \"a\"\npath = \"/x\"\ndecoder = \"openai-chat\"\n[[llm_endpoint]]\nhost = \"b\"\npath = \"/x\"\ndecoder = \"openai-chat\"\n").unwrap();
        let hosts: Vec<_> = c.endpoint_rules().into_iter().map(|r| r.host).collect();
        assert_eq!(hosts, ["b", "a"]);
    }
}
