//! Model-name matching that survives drift: the names a call carries (`openai/gpt-5.4-20260305`,
//! `anthropic/claude-4-sonnet-20250522`, `claude-sonnet-4.5`, `models/gemini-2.5-flash`) turned
//! into the candidate keys a price table is searched with, most specific first, and the
//! canonical spelling both sides are compared in.

/// The canonical spelling of a model name: lower case; in Claude names, dots between digits
/// become dashes (OpenRouter's `claude-sonnet-4.5` is Anthropic's `claude-sonnet-4-5`) and the
/// version comes after the family (`claude-4-sonnet` and `claude-3-5-sonnet` are spelled
/// `claude-sonnet-4` and `claude-sonnet-3-5`), so either order matches the other.
pub(super) fn canonical(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let (dir, last) = match lower.rfind('/') {
        Some(i) => lower.split_at(i + 1),
        None => ("", lower.as_str()),
    };
    let Some(rest) = last.strip_prefix("claude-") else {
        return lower;
    };
    let b = rest.as_bytes();
    let undotted: String = rest
        .char_indices()
        .map(|(i, c)| {
            let digit_before = i > 0 && b[i - 1].is_ascii_digit();
            let digit_after = b.get(i + 1).is_some_and(u8::is_ascii_digit);
            if c == '.' && digit_before && digit_after {
                '-'
            } else {
                c
            }
        })
        .collect();
    format!("{dir}claude-{}", family_first(&undotted))
}

/// `4-sonnet…` → `sonnet-4…`, `3-5-haiku…` → `haiku-3-5…`; anything else unchanged.
fn family_first(rest: &str) -> String {
    let mut parts = rest.splitn(4, '-');
    let (a, b, c) = (parts.next(), parts.next(), parts.next());
    let tail = parts.next();
    let is_num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let is_family = |s: &str| matches!(s, "opus" | "sonnet" | "haiku");
    let join = |head: String, rest: &[Option<&str>]| {
        let mut out = head;
        for p in rest.iter().flatten() {
            out.push('-');
            out.push_str(p);
        }
        out
    };
    match (a, b, c) {
        (Some(major), Some(fam), _) if is_num(major) && is_family(fam) => {
            join(format!("{fam}-{major}"), &[c, tail])
        }
        (Some(major), Some(minor), Some(fam))
            if is_num(major) && is_num(minor) && is_family(fam) =>
        {
            join(format!("{fam}-{major}-{minor}"), &[tail])
        }
        _ => rest.to_string(),
    }
}

/// The price-table prefix a provider's entries use (`gcp.gemini` calls are priced from the
/// `gemini/…` entries of Google AI Studio), or the provider itself.
pub(super) fn family(provider: &str) -> String {
    let p = provider.trim().to_ascii_lowercase();
    match p.as_str() {
        "gcp.gemini" | "google" | "google-ai" | "gcp.vertex_ai" | "vertex_ai" => "gemini".into(),
        _ => p,
    }
}

/// The name without a date suffix (`-20250514`, `-2025-08-07`, `@20250514`), if it has one.
fn undated(name: &str) -> Option<&str> {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let n = name.len();
    if n > 9 && name.is_char_boundary(n - 9) {
        let (head, tail) = name.split_at(n - 9);
        if (tail.starts_with('-') || tail.starts_with('@')) && digits(&tail[1..]) {
            return Some(head);
        }
    }
    if n > 11 && name.is_char_boundary(n - 11) {
        let (head, tail) = name.split_at(n - 11);
        let t = tail.as_bytes();
        if t[0] == b'-'
            && t[5] == b'-'
            && t[8] == b'-'
            && digits(&tail[1..5])
            && digits(&tail[6..8])
            && digits(&tail[9..])
        {
            return Some(head);
        }
    }
    None
}

/// The canonical keys to try for a call's `(provider, model)`, most specific first, without
/// repeats: the name as sent, then without its date; then the same for the name with each
/// leading `vendor/` segment (or Gemini's `models/`) stripped; each of these also under the
/// table prefixes of the provider and of the name's vendor (`gemini/…`, `openrouter/…`) it
/// does not already carry.
pub(super) fn candidates(provider: &str, model: &str) -> Vec<String> {
    let model = model.trim();
    let mut out: Vec<String> = Vec::new();
    if model.is_empty() {
        return out;
    }
    let mut prefixes = vec![family(provider)];
    if let Some((vendor, _)) = model.split_once('/') {
        prefixes.push(family(vendor));
    }
    prefixes.retain(|p| !p.is_empty() && p != "models");
    prefixes.dedup();

    let mut names = vec![model];
    let mut rest = model;
    while let Some((_, tail)) = rest.split_once('/') {
        if !tail.is_empty() {
            names.push(tail);
        }
        rest = tail;
    }
    let mut push = |s: String| {
        let c = canonical(&s);
        if !out.contains(&c) {
            out.push(c);
        }
    };
    for name in names {
        for form in std::iter::once(name).chain(undated(name)) {
            push(form.to_string());
            for p in &prefixes {
                if !form.starts_with(&format!("{p}/")) {
                    push(format!("{p}/{form}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_claude_spellings_meet() {
        assert_eq!(
            canonical("claude-sonnet-4.5"),
            canonical("claude-sonnet-4-5")
        );
        assert_eq!(canonical("Claude-Sonnet-4-5"), "claude-sonnet-4-5");
        assert_eq!(
            canonical("claude-4-sonnet-20250522"),
            "claude-sonnet-4-20250522"
        );
        assert_eq!(canonical("claude-3.5-haiku"), canonical("claude-3-5-haiku"));
        assert_eq!(canonical("claude-3-5-haiku"), "claude-haiku-3-5");
        assert_eq!(
            canonical("anthropic/claude-opus-4.1"),
            "anthropic/claude-opus-4-1"
        );
        // Dots stay dots outside Claude names.
        assert_eq!(canonical("GPT-5.1"), "gpt-5.1");
    }

    #[test]
    fn date_suffixes_strip() {
        assert_eq!(undated("claude-sonnet-4-20250514"), Some("claude-sonnet-4"));
        assert_eq!(undated("gpt-5-nano-2025-08-07"), Some("gpt-5-nano"));
        assert_eq!(undated("claude-opus-4-1@20250805"), Some("claude-opus-4-1"));
        assert_eq!(undated("gpt-5.1"), None);
        assert_eq!(undated("gemini-exp-1206"), None);
        assert_eq!(undated("é-2025080"), None);
    }

    #[test]
    fn candidates_in_order() {
        assert_eq!(
            candidates("openrouter", "openai/gpt-5.4-20260305"),
            [
                "openai/gpt-5.4-20260305",
                "openrouter/openai/gpt-5.4-20260305",
                "openai/gpt-5.4",
                "openrouter/openai/gpt-5.4",
                "gpt-5.4-20260305",
                "openrouter/gpt-5.4-20260305",
                "gpt-5.4",
                "openrouter/gpt-5.4",
            ]
        );
        assert_eq!(
            candidates("gcp.gemini", "models/gemini-2.5-flash"),
            [
                "models/gemini-2.5-flash",
                "gemini/models/gemini-2.5-flash",
                "gemini-2.5-flash",
                "gemini/gemini-2.5-flash",
            ]
        );
        assert!(candidates("openai", "  ").is_empty());
    }
}
