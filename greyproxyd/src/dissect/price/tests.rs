//! Price-table tests: the embedded snapshot, name matching, hand-computed costs, overrides.
//! Prices quoted in comments are the snapshot's (litellm 1.110.2) in USD per token; a refresh
//! that changes one of them fails the test that names it.
#![allow(clippy::unwrap_used)]

use super::*;

fn table() -> PriceTable {
    PriceTable::with_overrides(Vec::new()).unwrap()
}

fn ov(model: &str) -> PriceOverride {
    PriceOverride {
        model: model.into(),
        ..PriceOverride::default()
    }
}

fn usage(input: u64, read: u64, write: u64, output: u64, reasoning: u64) -> Usage {
    Usage {
        input_tokens: input,
        cache_read_tokens: read,
        cache_write_tokens: write,
        cache_write_5m_tokens: None,
        cache_write_1h_tokens: None,
        output_tokens: output,
        reasoning_tokens: reasoning,
    }
}

fn key(t: &PriceTable, provider: &str, model: &str) -> Option<String> {
    t.lookup(provider, model).map(|(k, _)| k.to_string())
}

#[test]
fn snapshot_loads_every_entry_losslessly() {
    let doc: serde_json::Value = serde_json::from_str(SNAPSHOT_JSON).unwrap();
    let models = doc["models"].as_object().unwrap();
    let t = table();
    assert_eq!(t.version(), "litellm 1.110.2 (2026-11-20)");
    // No entry is dropped on load, and every one is in the providers we kept.
    assert_eq!(t.snapshot.entries.len(), models.len());
    for (k, v) in models {
        let p = v["litellm_provider"].as_str().unwrap();
        assert!(
            ["anthropic", "openai", "gemini", "openrouter"].contains(&p),
            "{k}: {p}"
        );
        // Every price is a whole number of pico-USD, so the integer table is exact.
        for (f, x) in v.as_object().unwrap() {
            if let Some(x) = x.as_f64().filter(|_| f.contains("cost")) {
                let pico = x * 1e12;
                assert!((pico - pico.round()).abs() < 1e-3, "{k}.{f} = {x}");
            }
        }
    }
    // 3e-06 and friends land on exact integers.
    let (_, p) = t.lookup("anthropic", "claude-sonnet-4-5").unwrap();
    assert_eq!(
        p.base,
        Rates {
            input: 3_000_000,
            output: 15_000_000,
            cache_read: 300_000,
            cache_write_5m: 3_750_000,
            cache_write_1h: 6_000_000,
            reasoning: 15_000_000,
        }
    );
    assert_eq!(p.above_200k, None);
}

#[test]
fn anthropic_call_with_5m_and_1h_writes_and_a_read() {
    // claude-opus-4-6: input 5e-06, cache read 5e-07, 5-minute write 6.25e-06,
    // 1-hour write 1e-05, output 2.5e-05. Wire usage: input 3, cache_creation 5333
    // (ephemeral_5m 1333, ephemeral_1h 4000), cache_read 8595, output 148.
    //   3 × 5e-06 = 0.000015; 8595 × 5e-07 = 0.0042975; 1333 × 6.25e-06 = 0.00833125;
    //   4000 × 1e-05 = 0.04; 148 × 2.5e-05 = 0.0037
    //   sum 0.05634375 USD = 56 343.75 µUSD → 56 344.
    let mut u = usage(3 + 5333 + 8595, 8595, 5333, 148, 0);
    u.cache_write_5m_tokens = Some(1333);
    u.cache_write_1h_tokens = Some(4000);
    let c = table().cost("anthropic", "claude-opus-4-6", Some(&u), None);
    assert_eq!(c.state, PriceState::Priced);
    assert_eq!(c.micro_usd, Some(56_344));
    assert_eq!(c.price_model.as_deref(), Some("claude-opus-4-6"));
    assert_eq!(c.table_version, "litellm 1.110.2 (2026-11-20)");
    assert_eq!(c.provider_micro_usd, None);

    // Billing the 1-hour part at the 5-minute rate (LiteLLM's old bug) would give
    // 56 343.75 − 4000 × (1e-05 − 6.25e-06) × 10⁶ = 41 343.75: we must not.
    // Writes without a TTL split go at the 5-minute price: 5333 × 6.25e-06 = 0.03333125,
    //   sum 0.000015 + 0.0042975 + 0.03333125 + 0.0037 = 0.04134375 → 41 344.
    let unsplit = usage(3 + 5333 + 8595, 8595, 5333, 148, 0);
    let c = table().cost("anthropic", "claude-opus-4-6", Some(&unsplit), None);
    assert_eq!(c.micro_usd, Some(41_344));
}

#[test]
fn openai_call_with_cached_and_reasoning_tokens() {
    // gpt-5.1 (dated name, its own entry): input 1.25e-06, cached 1.25e-07, output 1e-05;
    // reasoning is not priced apart, so it is output.
    //   uncached (20 517 − 17 408) 3109 × 1.25e-06 = 0.00388625
    //   17 408 × 1.25e-07 = 0.002176; 1234 × 1e-05 = 0.01234
    //   sum 0.01840225 USD = 18 402.25 µUSD → 18 402.
    let u = usage(20_517, 17_408, 0, 1234, 512);
    let c = table().cost("openai", "gpt-5.1-2025-11-13", Some(&u), None);
    assert_eq!(c.price_model.as_deref(), Some("gpt-5.1-2025-11-13"));
    assert_eq!(c.micro_usd, Some(18_402));
}

#[test]
fn reasoning_priced_apart() {
    // 1 USD/M input, 2 USD/M output, 8 USD/M reasoning: 1000 × 1 + (500 − 300) × 2 +
    // 300 × 8 = 1000 + 400 + 2400 µUSD.
    let t = PriceTable::with_overrides(vec![PriceOverride {
        input: Some(1.0),
        output: Some(2.0),
        reasoning: Some(8.0),
        ..ov("house-reasoner")
    }])
    .unwrap();
    let c = t.cost(
        "openai",
        "house-reasoner",
        Some(&usage(1000, 0, 0, 500, 300)),
        None,
    );
    assert_eq!(c.micro_usd, Some(3800));
    // Reasoning beyond the output count is capped at it (output includes reasoning).
    let c = t.cost(
        "openai",
        "house-reasoner",
        Some(&usage(0, 0, 0, 10, 99)),
        None,
    );
    assert_eq!(c.micro_usd, Some(80));
}

#[test]
fn gemini_above_200k_input_uses_the_higher_tier() {
    // gemini/gemini-2.5-pro: ≤ 200k input 1.25e-06, output 1e-05; above: input 2.5e-06,
    // cache read 2.5e-07, output 1.5e-05 (thinking included: not priced apart).
    //   150 000 × 2.5e-06 = 0.375; 100 000 × 2.5e-07 = 0.025; 2000 × 1.5e-05 = 0.03
    //   sum 0.43 USD = 430 000 µUSD.
    let t = table();
    let u = usage(250_000, 100_000, 0, 2000, 1500);
    let c = t.cost("gcp.gemini", "gemini-2.5-pro", Some(&u), None);
    assert_eq!(c.price_model.as_deref(), Some("gemini/gemini-2.5-pro"));
    assert_eq!(c.micro_usd, Some(430_000));
    // Exactly 200 000 is the base tier: 200 000 × 1.25e-06 = 0.25 USD.
    let c = t.cost(
        "gcp.gemini",
        "gemini-2.5-pro",
        Some(&usage(200_000, 0, 0, 0, 0)),
        None,
    );
    assert_eq!(c.micro_usd, Some(250_000));
    // One more token: 200 001 × 2.5e-06 = 0.5000025 USD = 500 002.5 µUSD → 500 003.
    let c = t.cost(
        "gcp.gemini",
        "gemini-2.5-pro",
        Some(&usage(200_001, 0, 0, 0, 0)),
        None,
    );
    assert_eq!(c.micro_usd, Some(500_003));
}

#[test]
fn openrouter_names_match_vendor_entries() {
    let t = table();
    let cases = [
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        (
            "anthropic/claude-4.5-sonnet-20250929",
            "claude-sonnet-4-5-20250929",
        ),
        ("openai/gpt-5.4-20260305", "gpt-5.4"),
        ("openai/gpt-5.4", "gpt-5.4"),
        ("google/gemini-2.5-flash", "gemini/gemini-2.5-flash"),
    ];
    for (model, want) in cases {
        assert_eq!(
            key(&t, "openrouter", model).as_deref(),
            Some(want),
            "{model}"
        );
    }
    // OpenRouter's own figure is kept beside ours: 0.00123 USD.
    let c = t.cost(
        "openrouter",
        "openai/gpt-5.4",
        Some(&usage(10, 0, 0, 1, 0)),
        Some(0.00123),
    );
    assert_eq!(c.provider_micro_usd, Some(1230));
    assert_eq!(c.state, PriceState::Priced);
}

#[test]
fn drifted_names_match() {
    let t = table();
    let cases = [
        ("anthropic", "claude-opus-4-6-20991231", "claude-opus-4-6"),
        ("anthropic", "claude-haiku-4-5@20251001", "claude-haiku-4-5"),
        ("anthropic", "Claude-Opus-4-6", "claude-opus-4-6"),
        ("openai", "gpt-5-nano-2025-08-07", "gpt-5-nano-2025-08-07"),
        ("openai", "gpt-5-nano-2099-01-01", "gpt-5-nano"),
        ("openai", "GPT-5.1", "gpt-5.1"),
        (
            "gcp.gemini",
            "models/gemini-3-flash-preview",
            "gemini/gemini-3-flash-preview",
        ),
        ("gcp.gemini", "gemini-pro-latest", "gemini-pro-latest"),
    ];
    for (provider, model, want) in cases {
        assert_eq!(key(&t, provider, model).as_deref(), Some(want), "{model}");
    }
    assert_eq!(
        t.context_window("anthropic", "claude-opus-4-6-20260205"),
        Some(1_000_000)
    );
    assert_eq!(t.context_window("openai", "gpt-5.1"), Some(272_000));
    assert_eq!(t.context_window("openai", "no-such-model"), None);
}

#[test]
fn unknown_model_is_unpriced_not_free() {
    let u = usage(1000, 0, 0, 100, 0);
    let c = table().cost("openai", "lukealonso/Minimax-M2.5", Some(&u), Some(0.002));
    assert_eq!(c.state, PriceState::Unpriced);
    assert_eq!(c.micro_usd, None);
    assert_eq!(c.price_model, None);
    assert_eq!(c.table_version, "litellm 1.110.2 (2026-11-20)");
    assert_eq!(c.provider_micro_usd, Some(2000));
    assert_eq!(
        table().cost("openai", "", Some(&u), None).state,
        PriceState::Unpriced
    );
}

#[test]
fn no_usage_is_no_usage() {
    let c = table().cost("anthropic", "claude-opus-4-6", None, None);
    assert_eq!(c.state, PriceState::NoUsage);
    assert_eq!(c.micro_usd, None);
    assert_eq!(c.price_model, None);
}

#[test]
fn overrides_add_and_change_prices() {
    let t = PriceTable::with_overrides(vec![
        // A model the snapshot lacks, Anthropic: cache writes default to 1.25× and 2× input,
        // cache reads to the input price.
        PriceOverride {
            provider: Some("anthropic".into()),
            input: Some(2.0),
            output: Some(10.0),
            context_window: Some(500_000),
            ..ov("claude-house-1")
        },
        // An existing model: only `output` changes, the rest stays the snapshot's.
        PriceOverride {
            output: Some(20.0),
            ..ov("claude-sonnet-4-5")
        },
        // Only for OpenRouter calls.
        PriceOverride {
            provider: Some("openrouter".into()),
            input: Some(100.0),
            ..ov("gpt-5.4")
        },
    ])
    .unwrap();
    assert!(
        t.version()
            .starts_with("litellm 1.110.2 (2026-11-20) +3 overrides "),
        "{}",
        t.version()
    );
    // The same overrides give the same version; another value another one.
    let one = |input| {
        PriceTable::with_overrides(vec![PriceOverride {
            input: Some(input),
            output: Some(1.0),
            ..ov("house-model")
        }])
        .unwrap()
        .version()
        .to_owned()
    };
    assert_eq!(one(1.0), one(1.0));
    assert_ne!(one(1.0), one(2.0));

    let (k, p) = t.lookup("anthropic", "claude-house-1-20260101").unwrap();
    assert_eq!(k, "claude-house-1");
    assert_eq!(
        p.base,
        Rates {
            input: 2_000_000,
            output: 10_000_000,
            cache_read: 2_000_000,
            cache_write_5m: 2_500_000,
            cache_write_1h: 4_000_000,
            reasoning: 10_000_000,
        }
    );
    assert_eq!(
        t.context_window("anthropic", "claude-house-1"),
        Some(500_000)
    );
    // Restricted to anthropic: an OpenAI call of that name is not priced by it.
    assert_eq!(key(&t, "openai", "claude-house-1"), None);

    // The dated Sonnet now prices from the override: 1000 × 3e-06 + 100 × 2e-05
    // = 0.003 + 0.002 USD.
    let c = t.cost(
        "anthropic",
        "claude-sonnet-4-5-20250929",
        Some(&usage(1000, 0, 0, 100, 0)),
        None,
    );
    assert_eq!(c.price_model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(c.micro_usd, Some(5000));
    assert_eq!(c.table_version, t.version());
    let (_, p) = t.lookup("anthropic", "claude-sonnet-4-5").unwrap();
    assert_eq!(
        (p.base.cache_write_5m, p.base.cache_write_1h),
        (3_750_000, 6_000_000)
    );

    // gpt-5.4: 100 USD/M through OpenRouter, the snapshot's price direct.
    let u = usage(1000, 0, 0, 0, 0);
    assert_eq!(
        t.cost("openrouter", "openai/gpt-5.4", Some(&u), None)
            .micro_usd,
        Some(100_000)
    );
    let direct = t.cost("openai", "gpt-5.4", Some(&u), None);
    assert_eq!(direct.price_model.as_deref(), Some("gpt-5.4"));
    assert_ne!(direct.micro_usd, Some(100_000));

    let one = PriceTable::with_overrides(vec![PriceOverride {
        context_window: Some(1),
        ..ov("gpt-5.1")
    }])
    .unwrap();
    assert!(
        one.version()
            .starts_with("litellm 1.110.2 (2026-11-20) +1 override ")
    );
}

#[test]
fn override_replaces_a_key_at_every_tier() {
    // gemini-2.5-pro input at 1 USD/M whatever the size; output keeps its tiers.
    let t = PriceTable::with_overrides(vec![PriceOverride {
        input: Some(1.0),
        ..ov("gemini/gemini-2.5-pro")
    }])
    .unwrap();
    let (_, p) = t.lookup("gcp.gemini", "gemini-2.5-pro").unwrap();
    let high = p.above_200k.unwrap();
    assert_eq!((p.base.input, high.input), (1_000_000, 1_000_000));
    assert_eq!((p.base.output, high.output), (10_000_000, 15_000_000));
}

#[test]
fn invalid_overrides_are_rejected() {
    let bad = |o: PriceOverride| PriceTable::with_overrides(vec![o]).unwrap_err();
    for v in [-1.0, f64::NAN, f64::INFINITY, 2e6] {
        let e = bad(PriceOverride {
            cache_write_1h: Some(v),
            input: Some(1.0),
            ..ov("claude-x")
        });
        assert!(
            matches!(
                e,
                PriceError::InvalidPrice {
                    field: "cache_write_1h",
                    ..
                }
            ),
            "{v}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("\"claude-x\"") && msg.contains("cache_write_1h"),
            "{msg}"
        );
    }
    assert_eq!(bad(ov("  ")), PriceError::EmptyModel);
    assert_eq!(
        bad(ov("gpt-5.1")),
        PriceError::Empty {
            model: "gpt-5.1".into()
        }
    );
    let e = bad(PriceOverride {
        input: Some(1.0),
        ..ov("brand-new")
    });
    assert_eq!(
        e,
        PriceError::Incomplete {
            model: "brand-new".into()
        }
    );
    assert!(e.to_string().contains("`input` and `output`"));
    let twice = PriceTable::with_overrides(vec![
        PriceOverride {
            input: Some(1.0),
            ..ov("gpt-5.1")
        },
        PriceOverride {
            output: Some(1.0),
            ..ov("GPT-5.1")
        },
    ]);
    assert_eq!(
        twice.unwrap_err(),
        PriceError::Duplicate {
            model: "GPT-5.1".into()
        }
    );
}

#[test]
fn override_parses_from_toml_and_refuses_unknown_keys() {
    let o: PriceOverride = toml::from_str(
        "model = \"local\"\nprovider = \"openai\"\ninput = 0.5\noutput = 1\ncontext_window = 32768\n",
    )
    .unwrap();
    assert_eq!(o.model, "local");
    assert_eq!(
        (o.input, o.output, o.context_window),
        (Some(0.5), Some(1.0), Some(32_768))
    );
    let e = toml::from_str::<PriceOverride>("model = \"local\"\ninput_price = 1\n").unwrap_err();
    assert!(e.to_string().contains("input_price"), "{e}");
    assert!(toml::from_str::<PriceOverride>("input = 1\n").is_err());
}

#[test]
fn rounding_is_half_up_on_exact_sums() {
    // 0.5 USD/M = 0.5 µUSD a token: 1 token → 0.5 → 1; 3 → 1.5 → 2; 0.4999 USD/M → 0.
    let t = PriceTable::with_overrides(vec![
        PriceOverride {
            input: Some(0.5),
            output: Some(0.0),
            ..ov("half")
        },
        PriceOverride {
            input: Some(0.4999),
            output: Some(0.0),
            ..ov("under-half")
        },
    ])
    .unwrap();
    let at = |m: &str, n: u64| {
        t.cost("openai", m, Some(&usage(n, 0, 0, 0, 0)), None)
            .micro_usd
    };
    assert_eq!(at("half", 1), Some(1));
    assert_eq!(at("half", 3), Some(2));
    assert_eq!(at("half", 4), Some(2));
    assert_eq!(at("under-half", 1), Some(0));
    // A free call is priced 0 (not unpriced).
    assert_eq!(at("half", 0), Some(0));
    // Float would drift here: 1 000 001 tokens × 3e-06 = 3.000003 USD exactly.
    let c = table().cost(
        "anthropic",
        "claude-sonnet-4-5",
        Some(&usage(1_000_001, 0, 0, 0, 0)),
        None,
    );
    assert_eq!(c.micro_usd, Some(3_000_003));
    // Counts past the tier are fine at the extremes: no overflow, no panic.
    let huge = usage(u64::MAX, 0, 0, u64::MAX, 0);
    let c = table().cost("anthropic", "claude-opus-4-6", Some(&huge), None);
    assert_eq!(c.state, PriceState::Priced);
}
