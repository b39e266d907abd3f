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

/// `causeway llm traces`: the newest calls as spans.
pub(crate) fn traces(dir: &ProjectArgs, since: Span, limit: usize, json: bool) -> Result<ExitCode> {
    let project = super::open(dir)?;
    let since_ms = SystemClock.now_ms().saturating_sub(since.millis());
    let calls = project.meta.llm_calls(since_ms, limit.max(1))?;
    let attributes = |call: &causeway_store::LlmCall| -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&call.attributes_json).unwrap_or_default()
    };
    if json {
        let spans: Vec<serde_json::Value> = calls
            .iter()
            .map(|call| {
                json!({"trace_id": call.trace_id, "span_id": call.span_id, "at_ms": call.at_ms,
                    "duration_ms": call.latency_ms, "name": format!("{} {}", call.operation, call.route),
                    "attributes": attributes(call)})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&spans)?);
        return Ok(ExitCode::SUCCESS);
    }
    if calls.is_empty() {
        println!("no LLM calls in the last {since} in {}", dir.dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut output = table(&[
        "time",
        "trace",
        "call",
        "provider / model",
        "tokens in / out",
        "ms",
        "finish",
        "prompt",
        "guardrails",
    ]);
    for call in &calls {
        let attributes = attributes(call);
        let text = |key: &str| match attributes.get(key) {
            Some(serde_json::Value::Array(items)) => {
                items.iter().map(|item| item.as_str().unwrap_or_default().to_string()).collect::<Vec<_>>().join(", ")
            }
            Some(serde_json::Value::String(text)) => text.clone(),
            _ => String::new(),
        };
        output.add_row(vec![
            causeway_types::format_timestamp(call.at_ms),
            call.trace_id.chars().take(16).collect(),
            format!("{} {}", call.operation, call.route),
            format!("{} / {}", call.provider, call.model),
            if call.usage_known {
                format!("{} / {}", call.prompt_tokens, call.completion_tokens)
            } else {
                "unknown".into()
            },
            call.latency_ms.to_string(),
            text("gen_ai.response.finish_reasons"),
            call.prompt.clone(),
            text("causeway.guardrails"),
        ]);
    }
    println!("the newest {} in the last {since} ({})", plural(calls.len() as u64, "call"), dir.dir.display());
    println!("{output}");
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
