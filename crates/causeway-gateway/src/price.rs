//! What a call costs, exactly: prices per million tokens held as whole micro-dollars, a call's
//! cost as whole pico-dollars (tokens × micro-dollars per million), so sums over millions of
//! calls never drift. A model the table does not price costs [`Cost::Unpriced`] — shown as
//! "unpriced", never as $0. The table has a version (a hash of its contents) stored beside each
//! priced call, so a price change never rewrites history.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::usage::Usage;

/// One model's prices, as written in `causeway.toml` (dollars per million tokens, as decimal text:
/// `"0.15"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// The model name as the provider reports it.
    pub model: String,
    /// Dollars per million prompt tokens.
    pub input: String,
    /// Dollars per million prompt tokens served from the provider's cache (default: `input`).
    #[serde(default)]
    pub cached_input: Option<String>,
    /// Dollars per million generated tokens.
    pub output: String,
}

/// Micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelPrice {
    /// Per million prompt tokens.
    pub input: u64,
    /// Per million cached prompt tokens.
    pub cached_input: u64,
    /// Per million generated tokens.
    pub output: u64,
}

/// The cost of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Pico-dollars (10⁻¹² $).
    Priced(u128),
    /// The model has no price in the table.
    Unpriced,
}

impl Cost {
    /// Adds two costs; anything unpriced makes the sum unpriced (a total that hides an unpriced
    /// call would understate the bill).
    pub fn plus(self, other: Cost) -> Cost {
        match (self, other) {
            (Cost::Priced(left), Cost::Priced(right)) => Cost::Priced(left.saturating_add(right)),
            _ => Cost::Unpriced,
        }
    }
}

impl fmt::Display for Cost {
    /// Dollars to six decimals, rounded half up (`$0.000042`), or `unpriced`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cost::Unpriced => formatter.write_str("unpriced"),
            Cost::Priced(pico) => {
                let micro = (pico + 500_000) / 1_000_000;
                write!(formatter, "${}.{:06}", micro / 1_000_000, micro % 1_000_000)
            }
        }
    }
}

/// The prices of every priced model, and the table's version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
    version: String,
}

/// Dollars as decimal text (`"0.15"`, `"3"`, at most six decimals) in micro-dollars.
fn micro_dollars(text: &str, model: &str, field: &str) -> Result<u64> {
    parse_micro_dollars(text).ok_or_else(|| {
        Error::Config(format!(
            "price `{field}` of model `{model}` is `{text}`: write dollars per million tokens as a decimal \
             number with at most six decimals, such as \"0.15\""
        ))
    })
}

/// Dollars as decimal text (`"0.15"`, `"3"`, at most six decimals) in whole micro-dollars; `None`
/// for anything else (signs, exponents, seven decimals, overflow).
pub(crate) fn parse_micro_dollars(text: &str) -> Option<u64> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|byte| byte.is_ascii_digit())
        || !fraction.bytes().all(|byte| byte.is_ascii_digit())
        || fraction.len() > 6
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let fraction: u64 = format!("{fraction:0<6}").parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(fraction)
}

impl PriceTable {
    /// The table of `entries`; each model at most once, every price a decimal of dollars.
    pub fn new(entries: &[PriceEntry]) -> Result<Self> {
        let mut prices = BTreeMap::new();
        for entry in entries {
            let input = micro_dollars(&entry.input, &entry.model, "input")?;
            let price = ModelPrice {
                input,
                cached_input: match &entry.cached_input {
                    Some(text) => micro_dollars(text, &entry.model, "cached_input")?,
                    None => input,
                },
                output: micro_dollars(&entry.output, &entry.model, "output")?,
            };
            if prices.insert(entry.model.clone(), price).is_some() {
                return Err(Error::Config(format!(
                    "model `{}` is priced twice in [[gateway.prices]]: keep one entry",
                    entry.model
                )));
            }
        }
        let canonical = serde_json::to_string(&prices).map_err(|error| Error::Config(error.to_string()))?;
        let version = blake3::hash(canonical.as_bytes()).to_hex()[..12].to_string();
        Ok(Self { prices, version })
    }

    /// The table's version: the same prices give the same version, whatever their order.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// A model's prices.
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        self.prices.get(model)
    }

    /// What `usage` on `model` costs: uncached prompt tokens at the input price, cached ones at
    /// the cached price, generated ones (reasoning included) at the output price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Cost {
        let Some(price) = self.prices.get(model) else {
            return Cost::Unpriced;
        };
        let part = |tokens: u64, micro_per_million: u64| u128::from(tokens) * u128::from(micro_per_million);
        Cost::Priced(
            part(usage.uncached_prompt_tokens(), price.input)
                + part(usage.cached_tokens.min(usage.prompt_tokens), price.cached_input)
                + part(usage.completion_tokens, price.output),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(model: &str, input: &str, cached: Option<&str>, output: &str) -> PriceEntry {
        PriceEntry {
            model: model.into(),
            input: input.into(),
            cached_input: cached.map(str::to_string),
            output: output.into(),
        }
    }

    #[test]
    fn costs_are_exact_and_cached_tokens_priced_apart() {
        let table = PriceTable::new(&[entry("gpt-4o-mini", "0.15", Some("0.075"), "0.60")]).expect("valid");
        let usage = Usage { prompt_tokens: 1_000, cached_tokens: 400, completion_tokens: 200, reasoning_tokens: 50 };
        // 600 × 0.15 + 400 × 0.075 + 200 × 0.60 = 90 + 30 + 120 = 240 micro-dollars.
        assert_eq!(table.cost("gpt-4o-mini", &usage), Cost::Priced(240_000_000));
        assert_eq!(table.cost("gpt-4o-mini", &usage).to_string(), "$0.000240");
        assert_eq!(table.cost("unknown", &usage), Cost::Unpriced);
        assert_eq!(table.cost("unknown", &usage).to_string(), "unpriced");
        // A million calls of one token sum exactly.
        let one = table.cost("gpt-4o-mini", &Usage { prompt_tokens: 1, ..Usage::default() });
        let total = (0..1_000_000).fold(Cost::Priced(0), |sum, _| sum.plus(one));
        assert_eq!(total.to_string(), "$0.150000");
        assert_eq!(total.plus(Cost::Unpriced), Cost::Unpriced, "an unpriced call makes the total unpriced");
    }

    #[test]
    fn prices_parse_as_written_or_say_how_to_write_them() {
        let table =
            PriceTable::new(&[entry("a", "3", None, ".5"), entry("b", "0.000001", None, "12.25")]).expect("valid");
        assert_eq!(table.price("a"), Some(&ModelPrice { input: 3_000_000, cached_input: 3_000_000, output: 500_000 }));
        assert_eq!(table.price("b").map(|price| (price.input, price.output)), Some((1, 12_250_000)));
        for bad in ["", ".", "-1", "1e3", "0.1234567", "1,5", "$1", "99999999999999999999"] {
            let error = PriceTable::new(&[entry("m", bad, None, "1")]).expect_err(bad).to_string();
            assert!(error.contains("price `input` of model `m`") && error.contains("\"0.15\""), "{bad}: {error}");
        }
        let twice = PriceTable::new(&[entry("m", "1", None, "1"), entry("m", "2", None, "2")]).expect_err("twice");
        assert!(twice.to_string().contains("priced twice"), "{twice}");
    }

    #[test]
    fn the_version_follows_the_prices_not_their_order() {
        let first = PriceTable::new(&[entry("a", "1", None, "2"), entry("b", "3", None, "4")]).expect("valid");
        let reordered = PriceTable::new(&[entry("b", "3", None, "4"), entry("a", "1", None, "2")]).expect("valid");
        let changed = PriceTable::new(&[entry("a", "1", None, "2"), entry("b", "3", None, "5")]).expect("valid");
        assert_eq!(first.version(), reordered.version());
        assert_ne!(first.version(), changed.version());
        assert_eq!(first.version().len(), 12);
    }
}
