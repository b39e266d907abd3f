//! The LLM gateway's ledger: one row per call — who made it, where it went, its tokens and its
//! cost — and the sums `causeway llm usage` and the spend limits read back.
//!
//! Costs are whole pico-dollars; an unpriced call stores no cost (never 0), and sums count such
//! calls apart so a total never hides them.

use crate::db::{Row, ToValue, Value, params};
use crate::error::{Error, Result};
use crate::meta::MetaStore;

/// One call, as the gateway records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmCall {
    /// When it ended (epoch ms).
    pub at_ms: i64,
    /// The tenant the key belongs to.
    pub tenant: String,
    /// The API key's name (a Causeway token's name, or `anonymous`).
    pub key: String,
    /// The route the caller asked for.
    pub route: String,
    /// The provider that answered.
    pub provider: String,
    /// The model name sent to it.
    pub model: String,
    /// `chat` or `embeddings`.
    pub operation: String,
    /// Whether the provider reported usage (without it the tokens are 0 and the call unpriced).
    pub usage_known: bool,
    /// Prompt tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Of those, the ones served from the provider's cache.
    pub cached_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// The cost in pico-dollars; `None` when unpriced.
    pub cost_picodollars: Option<u64>,
    /// The price table's version.
    pub prices: String,
    /// How long the call took, in milliseconds.
    pub latency_ms: u64,
    /// The prompt version a prompt-named request used (`name/version`), or empty.
    pub prompt: String,
    /// The call's trace id (32 hex digits; W3C and OpenTelemetry's).
    pub trace_id: String,
    /// Its span id (16 hex digits).
    pub span_id: String,
    /// Its span's attributes (OpenTelemetry GenAI `gen_ai.*` and `causeway.*`), a JSON object.
    pub attributes_json: String,
}

/// What usage totals are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageDimension {
    /// The caller's tenant.
    Tenant,
    /// The caller's API key.
    Key,
    /// The route asked for.
    Route,
    /// The provider that answered.
    Provider,
    /// The model sent to it.
    Model,
    /// The prompt version a prompt-named request used (empty for the others).
    Prompt,
}

impl UsageDimension {
    /// Every dimension, in the order tables show them.
    pub const ALL: [UsageDimension; 6] =
        [Self::Tenant, Self::Key, Self::Route, Self::Provider, Self::Model, Self::Prompt];

    /// Its name on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Key => "key",
            Self::Route => "route",
            Self::Provider => "provider",
            Self::Model => "model",
            Self::Prompt => "prompt",
        }
    }

    /// The dimension named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|dimension| dimension.as_str() == text)
    }

    fn column(self) -> &'static str {
        match self {
            Self::Key => "api_key",
            other => other.as_str(),
        }
    }
}

/// The calls of one group, summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotal {
    /// The group's values, one per dimension asked for, in that order.
    pub group: Vec<String>,
    /// Calls.
    pub calls: u64,
    /// Prompt tokens (cached included).
    pub prompt_tokens: u64,
    /// Cached prompt tokens.
    pub cached_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// What the priced calls cost, in pico-dollars.
    pub priced_picodollars: u64,
    /// Calls without a price (their cost is unknown, not 0).
    pub unpriced_calls: u64,
}

fn count(row: &Row, index: usize) -> Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| Error::Database(format!("a negative count ({value}) in llm_calls")))
}

impl MetaStore {
    /// Appends calls to the ledger, in one transaction.
    pub fn record_llm_calls(&self, calls: &[LlmCall]) -> Result<()> {
        if calls.is_empty() {
            return Ok(());
        }
        let as_integer = |value: u64| Value::Integer(i64::try_from(value).unwrap_or(i64::MAX));
        let rows: Vec<Vec<Value>> = calls
            .iter()
            .map(|call| {
                vec![
                    call.at_ms.to_value(),
                    call.tenant.to_value(),
                    call.key.to_value(),
                    call.route.to_value(),
                    call.provider.to_value(),
                    call.model.to_value(),
                    call.operation.to_value(),
                    call.usage_known.to_value(),
                    as_integer(call.prompt_tokens),
                    as_integer(call.cached_tokens),
                    as_integer(call.completion_tokens),
                    call.cost_picodollars.map_or(Value::Null, as_integer),
                    call.prices.to_value(),
                    as_integer(call.latency_ms),
                    call.prompt.to_value(),
                    call.trace_id.to_value(),
                    call.span_id.to_value(),
                    call.attributes_json.to_value(),
                ]
            })
            .collect();
        let mut connection = self.lock();
        let mut transaction = connection.transaction()?;
        transaction.insert_rows(
            "INSERT INTO llm_calls (at_ms, tenant, api_key, route, provider, model, operation, usage_known, \
             prompt_tokens, cached_tokens, completion_tokens, cost_picodollars, prices, latency_ms, prompt, trace_id, \
             span_id, attributes_json)",
            "",
            &rows,
        )?;
        transaction.commit()
    }

    /// The calls in `[since_ms, until_ms)` summed by `group_by` (none: one total), the most
    /// expensive group first.
    pub fn llm_usage(&self, since_ms: i64, until_ms: i64, group_by: &[UsageDimension]) -> Result<Vec<UsageTotal>> {
        let columns: Vec<&str> = group_by.iter().map(|dimension| dimension.column()).collect();
        let selected = columns.iter().map(|column| format!("{column}, ")).collect::<String>();
        let grouping = if columns.is_empty() { String::new() } else { format!("GROUP BY {}", columns.join(", ")) };
        let ordering = columns.iter().map(|column| format!(", {column}")).collect::<String>();
        let sql = format!(
            "SELECT {selected}COUNT(*), CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT),
                CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT),
                CAST(COALESCE(SUM(cost_picodollars), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN cost_picodollars IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM llm_calls WHERE at_ms >= ?1 AND at_ms < ?2 {grouping}
             ORDER BY {cost} DESC, {calls} DESC{ordering}",
            cost = columns.len() + 5,
            calls = columns.len() + 1,
        );
        let width = columns.len();
        let totals = self.lock().query_map(&sql, params![since_ms, until_ms], |row| {
            let group = (0..width).map(|index| row.get::<String>(index)).collect::<Result<Vec<_>>>()?;
            Ok(UsageTotal {
                group,
                calls: count(row, width)?,
                prompt_tokens: count(row, width + 1)?,
                cached_tokens: count(row, width + 2)?,
                completion_tokens: count(row, width + 3)?,
                priced_picodollars: count(row, width + 4)?,
                unpriced_calls: count(row, width + 5)?,
            })
        })?;
        // An empty ledger sums to one row of zeros without grouping; show no row instead.
        Ok(totals.into_iter().filter(|total| total.calls > 0).collect())
    }

    /// The newest calls since `since_ms` (at most `limit`), newest first: the traces
    /// `causeway llm traces` lists.
    pub fn llm_calls(&self, since_ms: i64, limit: usize) -> Result<Vec<LlmCall>> {
        self.lock().query_map(
            "SELECT at_ms, tenant, api_key, route, provider, model, operation, usage_known, prompt_tokens, cached_tokens,
                completion_tokens, cost_picodollars, prices, latency_ms, prompt, trace_id, span_id, attributes_json
             FROM llm_calls WHERE at_ms >= ?1 ORDER BY at_ms DESC, id DESC LIMIT ?2",
            params![since_ms, limit as i64],
            |row| {
                let cost: Option<i64> = row.get(11)?;
                Ok(LlmCall {
                    at_ms: row.get(0)?,
                    tenant: row.get(1)?,
                    key: row.get(2)?,
                    route: row.get(3)?,
                    provider: row.get(4)?,
                    model: row.get(5)?,
                    operation: row.get(6)?,
                    usage_known: row.get::<i64>(7)? != 0,
                    prompt_tokens: count(row, 8)?,
                    cached_tokens: count(row, 9)?,
                    completion_tokens: count(row, 10)?,
                    cost_picodollars: cost.and_then(|cost| u64::try_from(cost).ok()),
                    prices: row.get(12)?,
                    latency_ms: count(row, 13)?,
                    prompt: row.get(14)?,
                    trace_id: row.get(15)?,
                    span_id: row.get(16)?,
                    attributes_json: row.get(17)?,
                })
            },
        )
    }

    /// What each (tenant, key) spent on priced calls since `since_ms`, in pico-dollars: the
    /// spend limits start from it when the gateway starts, so a restart forgets nothing.
    pub fn llm_spend_since(&self, since_ms: i64) -> Result<Vec<(String, String, u64)>> {
        self.lock().query_map(
            "SELECT tenant, api_key, CAST(COALESCE(SUM(cost_picodollars), 0) AS BIGINT) FROM llm_calls
             WHERE at_ms >= ?1 GROUP BY tenant, api_key ORDER BY tenant, api_key",
            params![since_ms],
            |row| Ok((row.get(0)?, row.get(1)?, count(row, 2)?)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestStore, on_both_backends};

    fn call(at_ms: i64, tenant: &str, key: &str, model: &str, tokens: u64, cost: Option<u64>) -> LlmCall {
        LlmCall {
            at_ms,
            tenant: tenant.into(),
            key: key.into(),
            route: "chat".into(),
            provider: "smol".into(),
            model: model.into(),
            operation: "chat".into(),
            usage_known: true,
            prompt_tokens: tokens,
            cached_tokens: tokens / 2,
            completion_tokens: 1,
            cost_picodollars: cost,
            prices: "v1".into(),
            latency_ms: 3,
            prompt: String::new(),
            trace_id: format!("{at_ms:032x}"),
            span_id: format!("{at_ms:016x}"),
            attributes_json: "{}".into(),
        }
    }

    fn the_ledger_sums_calls_by_any_grouping_and_keeps_unpriced_apart(location: &TestStore) -> Result<()> {
        let store = location.open()?;
        assert_eq!(store.llm_usage(0, i64::MAX, &[])?, Vec::new(), "an empty ledger shows no row");
        store.record_llm_calls(&[
            call(10, "research", "alice", "small", 10, Some(5_000_000)),
            call(20, "research", "bob", "small", 20, Some(7_000_000)),
            call(30, "research", "alice", "local", 30, None),
            call(40, "ops", "ci", "small", 4, Some(u64::from(u32::MAX) * 1_000)),
        ])?;
        let by_tenant = store.llm_usage(0, i64::MAX, &[UsageDimension::Tenant])?;
        assert_eq!(by_tenant.len(), 2);
        assert_eq!(by_tenant[0].group, vec!["ops".to_string()], "the most expensive first");
        let research = &by_tenant[1];
        assert_eq!(
            (research.calls, research.prompt_tokens, research.cached_tokens, research.completion_tokens),
            (3, 60, 30, 3)
        );
        assert_eq!((research.priced_picodollars, research.unpriced_calls), (12_000_000, 1));

        let by_key_and_model = store.llm_usage(15, 40, &[UsageDimension::Key, UsageDimension::Model])?;
        let groups: Vec<Vec<String>> = by_key_and_model.iter().map(|total| total.group.clone()).collect();
        assert_eq!(groups, vec![vec!["bob".to_string(), "small".into()], vec!["alice".into(), "local".into()]]);
        let whole = store.llm_usage(0, i64::MAX, &[])?;
        assert_eq!((whole.len(), whole[0].calls, whole[0].unpriced_calls), (1, 4, 1));

        let spend = store.llm_spend_since(20)?;
        assert_eq!(
            spend,
            vec![
                ("ops".to_string(), "ci".to_string(), u64::from(u32::MAX) * 1_000),
                ("research".into(), "alice".into(), 0),
                ("research".into(), "bob".into(), 7_000_000),
            ]
        );
        let newest = store.llm_calls(20, 2)?;
        let seen: Vec<(i64, &str)> = newest.iter().map(|call| (call.at_ms, call.key.as_str())).collect();
        assert_eq!(seen, vec![(40, "ci"), (30, "alice")], "newest first, at most the limit");
        assert_eq!(newest[1].cost_picodollars, None, "unpriced stays unpriced");
        assert_eq!(newest[0].trace_id, format!("{:032x}", 40));
        assert_eq!(UsageDimension::parse("key"), Some(UsageDimension::Key));
        assert_eq!(UsageDimension::parse("keys"), None);
        Ok(())
    }

    on_both_backends!(the_ledger_sums_calls_by_any_grouping_and_keeps_unpriced_apart);
}
