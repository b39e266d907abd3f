//! `causeway llm usage`: the gateway's ledger summed, as a table or JSON.

use std::process::ExitCode;

use anyhow::{Result, bail};
use causeway_gateway::Cost;
use causeway_store::{UsageDimension, UsageTotal};
use causeway_types::{Clock, Span, SystemClock};
use serde_json::json;

use super::table;
use crate::args::ProjectArgs;

/// A total's cost in words: dollars, with the unpriced calls named beside them.
fn cost_text(total: &UsageTotal) -> String {
    let dollars = Cost::Priced(u128::from(total.priced_picodollars)).to_string();
    match (total.unpriced_calls, total.unpriced_calls == total.calls) {
        (0, _) => dollars,
        (_, true) => "unpriced".to_string(),
        (unpriced, false) => format!("{dollars} + {unpriced} unpriced"),
    }
}

pub(crate) fn usage(dir: &ProjectArgs, since: Span, by: &[String], json: bool) -> Result<ExitCode> {
    let mut dimensions = Vec::new();
    for name in by.iter().map(|name| name.trim()).filter(|name| !name.is_empty()) {
        let Some(dimension) = UsageDimension::parse(name) else {
            bail!("--by {name}: sum by any of tenant, key, route, provider, model, prompt (comma-separated)");
        };
        if !dimensions.contains(&dimension) {
            dimensions.push(dimension);
        }
    }
    let project = super::open(dir)?;
    let now_ms = SystemClock.now_ms();
    let since_ms = now_ms.saturating_sub(since.millis());
    let totals = project.meta.llm_usage(since_ms, i64::MAX, &dimensions)?;
    if json {
        let rows: Vec<serde_json::Value> = totals
            .iter()
            .map(|total| {
                let mut row = serde_json::Map::new();
                for (dimension, value) in dimensions.iter().zip(&total.group) {
                    row.insert(dimension.as_str().into(), json!(value));
                }
                row.insert("calls".into(), json!(total.calls));
                row.insert("prompt_tokens".into(), json!(total.prompt_tokens));
                row.insert("cached_tokens".into(), json!(total.cached_tokens));
                row.insert("completion_tokens".into(), json!(total.completion_tokens));
                row.insert("priced_dollars".into(), json!(total.priced_picodollars as f64 / 1e12));
                row.insert("priced_picodollars".into(), json!(total.priced_picodollars));
                row.insert("unpriced_calls".into(), json!(total.unpriced_calls));
                serde_json::Value::Object(row)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if totals.is_empty() {
        println!(
            "no LLM calls in the last {since} in {}: the gateway records calls when `causeway server` serves [gateway]",
            dir.dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut headers: Vec<&str> = dimensions.iter().map(|dimension| dimension.as_str()).collect();
    headers.extend(["calls", "prompt tokens", "cached", "completion tokens", "cost"]);
    let mut output = table(&headers);
    let mut sum = UsageTotal {
        group: Vec::new(),
        calls: 0,
        prompt_tokens: 0,
        cached_tokens: 0,
        completion_tokens: 0,
        priced_picodollars: 0,
        unpriced_calls: 0,
    };
    for total in &totals {
        let mut row = total.group.clone();
        row.extend([
            total.calls.to_string(),
            total.prompt_tokens.to_string(),
            total.cached_tokens.to_string(),
            total.completion_tokens.to_string(),
            cost_text(total),
        ]);
        output.add_row(row);
        sum.calls += total.calls;
        sum.prompt_tokens += total.prompt_tokens;
        sum.cached_tokens += total.cached_tokens;
        sum.completion_tokens += total.completion_tokens;
        sum.priced_picodollars = sum.priced_picodollars.saturating_add(total.priced_picodollars);
        sum.unpriced_calls += total.unpriced_calls;
    }
    println!("LLM usage in the last {since} ({} in {})", plural(sum.calls, "call"), dir.dir.display());
    println!("{output}");
    if totals.len() > 1 {
        println!(
            "total: {}, {} prompt tokens ({} cached), {} completion tokens, {}",
            plural(sum.calls, "call"),
            sum.prompt_tokens,
            sum.cached_tokens,
            sum.completion_tokens,
            cost_text(&sum)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_name_unpriced_calls_and_never_show_them_as_zero() {
        let total = |calls, priced_picodollars, unpriced_calls| UsageTotal {
            group: Vec::new(),
            calls,
            prompt_tokens: 0,
            cached_tokens: 0,
            completion_tokens: 0,
            priced_picodollars,
            unpriced_calls,
        };
        assert_eq!(cost_text(&total(3, 42_000_000, 0)), "$0.000042");
        assert_eq!(cost_text(&total(3, 0, 3)), "unpriced");
        assert_eq!(cost_text(&total(3, 42_000_000, 1)), "$0.000042 + 1 unpriced");
    }
}
