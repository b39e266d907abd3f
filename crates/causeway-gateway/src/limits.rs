//! Limits per tenant and per API key: requests per minute, tokens per minute and dollars per
//! UTC day — a pure state machine on the time it is given (no clock inside), so tests drive it
//! millisecond by millisecond.
//!
//! Requests are counted when a call is admitted; tokens and dollars when it ends (nobody knows
//! them before), so calls admitted together can overshoot a token or spend limit by what they
//! use — the next call waits until the overshoot has drained. A refusal says which limit, whose,
//! and how many seconds until a retry can pass (`Retry-After`).

use std::collections::HashMap;

use crate::config::{DEFAULT_TENANT, GatewayConfig, LimitsConfig};
use crate::price::parse_micro_dollars;

/// A day in milliseconds (spend limits are per UTC day).
const DAY_MS: i64 = 86_400_000;
/// A minute in milliseconds.
const MINUTE_MS: f64 = 60_000.0;

/// Checked limits; `None` does not limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Pico-dollars per UTC day.
    pub picodollars_per_day: Option<u128>,
}

impl Limits {
    /// The limits `config` writes, or what is wrong with them.
    pub fn new(config: &LimitsConfig) -> Result<Self, String> {
        if config.requests_per_minute == Some(0) {
            return Err("requests_per_minute must be at least 1 (leave it out for no limit)".into());
        }
        if config.tokens_per_minute == Some(0) {
            return Err("tokens_per_minute must be at least 1 (leave it out for no limit)".into());
        }
        let picodollars_per_day = match &config.dollars_per_day {
            None => None,
            Some(text) => Some(u128::from(parse_micro_dollars(text).ok_or_else(|| {
                format!(
                    "dollars_per_day is `{text}`: write dollars as a decimal number with at most six decimals, such as \"5.00\""
                )
            })?) * 1_000_000),
        };
        Ok(Self {
            requests_per_minute: config.requests_per_minute,
            tokens_per_minute: config.tokens_per_minute,
            picodollars_per_day,
        })
    }

    fn limits_anything(&self) -> bool {
        self.requests_per_minute.is_some() || self.tokens_per_minute.is_some() || self.picodollars_per_day.is_some()
    }
}

/// Who is calling: the API key's name and the tenant it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The tenant.
    pub tenant: String,
    /// The key's name.
    pub key: String,
}

/// A call refused for being over a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The limit: `requests_per_minute`, `tokens_per_minute` or `dollars_per_day`.
    pub limit: &'static str,
    /// Which limit, whose, and when to retry, in words.
    pub message: String,
    /// Whole seconds until a retry can pass (at least 1).
    pub retry_after_seconds: u64,
}

/// What a limit is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Tenant(String),
    Key(String),
}

impl Subject {
    fn describe(&self) -> String {
        match self {
            Self::Tenant(name) => format!("tenant `{name}`"),
            Self::Key(name) => format!("key `{name}`"),
        }
    }
}

/// A bucket refilled continuously at `capacity` per minute, up to `capacity`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    capacity: f64,
    level: f64,
    at_ms: i64,
}

impl Bucket {
    fn full(capacity: f64, now_ms: i64) -> Self {
        Self { capacity, level: capacity, at_ms: now_ms }
    }

    fn refill(&mut self, now_ms: i64) {
        if now_ms > self.at_ms {
            let gained = (now_ms - self.at_ms) as f64 * self.capacity / MINUTE_MS;
            self.level = (self.level + gained).min(self.capacity);
            self.at_ms = now_ms;
        }
    }

    /// Seconds until the level reaches `needed`, 0 when it has.
    fn seconds_until(&self, needed: f64) -> u64 {
        if self.level >= needed {
            return 0;
        }
        let milliseconds = (needed - self.level) * MINUTE_MS / self.capacity;
        ((milliseconds / 1000.0).ceil() as u64).max(1)
    }
}

/// One subject's counters.
#[derive(Debug, Clone)]
struct Counters {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    day: i64,
    spent: u128,
}

impl Counters {
    fn new(limits: &Limits, now_ms: i64) -> Self {
        Self {
            requests: limits.requests_per_minute.map(|rate| Bucket::full(f64::from(rate), now_ms)),
            tokens: limits.tokens_per_minute.map(|rate| Bucket::full(rate as f64, now_ms)),
            day: now_ms.div_euclid(DAY_MS),
            spent: 0,
        }
    }

    fn advance(&mut self, now_ms: i64) {
        for bucket in [&mut self.requests, &mut self.tokens].into_iter().flatten() {
            bucket.refill(now_ms);
        }
        let day = now_ms.div_euclid(DAY_MS);
        if day != self.day {
            self.day = day;
            self.spent = 0;
        }
    }

    /// Why a call cannot pass now, if it cannot.
    fn refusal(&self, subject: &Subject, limits: &Limits, now_ms: i64) -> Option<Refusal> {
        let whose = subject.describe();
        if let (Some(bucket), Some(rate)) = (&self.requests, limits.requests_per_minute) {
            let wait = bucket.seconds_until(1.0);
            if wait > 0 {
                return Some(Refusal {
                    limit: "requests_per_minute",
                    message: format!("{whose} is over its limit of {rate} requests per minute; retry in {wait} s"),
                    retry_after_seconds: wait,
                });
            }
        }
        if let (Some(bucket), Some(rate)) = (&self.tokens, limits.tokens_per_minute) {
            let wait = bucket.seconds_until(1.0);
            if wait > 0 {
                return Some(Refusal {
                    limit: "tokens_per_minute",
                    message: format!("{whose} is over its limit of {rate} tokens per minute; retry in {wait} s"),
                    retry_after_seconds: wait,
                });
            }
        }
        if let Some(budget) = limits.picodollars_per_day
            && self.spent >= budget
        {
            let wait = ((self.day + 1) * DAY_MS - now_ms).max(0).cast_unsigned().div_ceil(1000).max(1);
            return Some(Refusal {
                limit: "dollars_per_day",
                message: format!(
                    "{whose} has spent its {} for today (UTC); retry after midnight UTC, in {wait} s",
                    crate::price::Cost::Priced(budget)
                ),
                retry_after_seconds: wait,
            });
        }
        None
    }
}

/// The limits of every tenant and key, and what each has used.
#[derive(Debug, Default)]
pub struct Limiter {
    /// Tenant name → (the tenant's limits, each key's limits).
    tenants: HashMap<String, (Limits, Limits)>,
    /// Key name → its tenant.
    tenant_of_key: HashMap<String, String>,
    counters: HashMap<Subject, Counters>,
}

impl Limiter {
    /// The limits `config` sets (checked by [`GatewayConfig::validate`] already; a section that
    /// does not parse limits nothing).
    pub fn new(config: &GatewayConfig) -> Self {
        let limits = |section: &Option<LimitsConfig>| {
            section.as_ref().and_then(|limits| Limits::new(limits).ok()).unwrap_or_default()
        };
        let mut limiter = Self::default();
        for tenant in &config.tenants {
            limiter.tenants.insert(tenant.name.clone(), (limits(&tenant.limits), limits(&tenant.key_limits)));
            for key in &tenant.keys {
                limiter.tenant_of_key.insert(key.clone(), tenant.name.clone());
            }
        }
        limiter
    }

    /// Who `key` is: it and its tenant ([`DEFAULT_TENANT`] unless a tenant lists it).
    pub fn caller(&self, key: &str) -> Caller {
        let tenant = self.tenant_of_key.get(key).cloned().unwrap_or_else(|| DEFAULT_TENANT.to_string());
        Caller { tenant, key: key.to_string() }
    }

    fn subjects(&self, caller: &Caller) -> Vec<(Subject, Limits)> {
        let Some((tenant, each_key)) = self.tenants.get(&caller.tenant) else { return Vec::new() };
        [(Subject::Tenant(caller.tenant.clone()), *tenant), (Subject::Key(caller.key.clone()), *each_key)]
            .into_iter()
            .filter(|(_, limits)| limits.limits_anything())
            .collect()
    }

    /// Admits a call at `now_ms` and counts its request, or refuses it (counting nothing) with
    /// the limit that stops it.
    pub fn admit(&mut self, caller: &Caller, now_ms: i64) -> Result<(), Refusal> {
        let subjects = self.subjects(caller);
        for (subject, limits) in &subjects {
            let counters = self.counters.entry(subject.clone()).or_insert_with(|| Counters::new(limits, now_ms));
            counters.advance(now_ms);
            if let Some(refusal) = counters.refusal(subject, limits, now_ms) {
                return Err(refusal);
            }
        }
        for (subject, _) in &subjects {
            if let Some(bucket) = self.counters.get_mut(subject).and_then(|counters| counters.requests.as_mut()) {
                bucket.level -= 1.0;
            }
        }
        Ok(())
    }

    /// Counts what an admitted call used when it ends.
    pub fn charge(&mut self, caller: &Caller, tokens: u64, picodollars: u128, now_ms: i64) {
        for (subject, limits) in self.subjects(caller) {
            let counters = self.counters.entry(subject).or_insert_with(|| Counters::new(&limits, now_ms));
            counters.advance(now_ms);
            if let Some(bucket) = counters.tokens.as_mut() {
                bucket.level -= tokens as f64;
            }
            counters.spent = counters.spent.saturating_add(picodollars);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TenantConfig;

    fn limiter(limits: LimitsConfig, key_limits: LimitsConfig) -> Limiter {
        Limiter::new(&GatewayConfig {
            tenants: vec![TenantConfig {
                name: "research".into(),
                keys: vec!["alice".into(), "bob".into()],
                limits: Some(limits),
                key_limits: Some(key_limits),
            }],
            ..GatewayConfig::default()
        })
    }

    #[test]
    fn requests_per_minute_refill_continuously_and_say_when_to_retry() {
        let mut limiter =
            limiter(LimitsConfig { requests_per_minute: Some(3), ..LimitsConfig::default() }, LimitsConfig::default());
        let alice = limiter.caller("alice");
        assert_eq!(alice.tenant, "research");
        for _ in 0..3 {
            assert_eq!(limiter.admit(&alice, 0), Ok(()));
        }
        let refusal = limiter.admit(&alice, 0).expect_err("the fourth request in a minute");
        assert_eq!(refusal.retry_after_seconds, 20, "one request every 20 s");
        assert!(
            refusal.message.contains("tenant `research` is over its limit of 3 requests per minute"),
            "{}",
            refusal.message
        );
        let bob = limiter.caller("bob");
        assert!(limiter.admit(&bob, 19_999).is_err(), "the limit is the tenant's, shared");
        assert_eq!(limiter.admit(&bob, 20_000), Ok(()));
        assert!(limiter.admit(&bob, 20_000).is_err(), "a refused call counts nothing, an admitted one counts");
        let stranger = limiter.caller("carol");
        assert_eq!(stranger.tenant, DEFAULT_TENANT);
        for _ in 0..100 {
            assert_eq!(limiter.admit(&stranger, 20_000), Ok(()), "the default tenant has no limits here");
        }
    }

    #[test]
    fn token_limits_count_what_calls_used_and_keys_have_their_own() {
        let mut limiter =
            limiter(LimitsConfig::default(), LimitsConfig { tokens_per_minute: Some(600), ..LimitsConfig::default() });
        let (alice, bob) = (limiter.caller("alice"), limiter.caller("bob"));
        assert_eq!(limiter.admit(&alice, 0), Ok(()));
        limiter.charge(&alice, 900, 0, 1_000);
        let refusal = limiter.admit(&alice, 1_000).expect_err("300 tokens over");
        assert_eq!(refusal.retry_after_seconds, 31, "301 tokens at 10 a second");
        assert!(
            refusal.message.contains("key `alice` is over its limit of 600 tokens per minute"),
            "{}",
            refusal.message
        );
        assert_eq!(limiter.admit(&bob, 1_000), Ok(()), "bob's key has its own bucket");
        assert!(limiter.admit(&alice, 31_000).is_err());
        assert_eq!(limiter.admit(&alice, 31_100), Ok(()));
    }

    #[test]
    fn spend_per_day_resets_at_midnight_utc() {
        let mut limiter = limiter(
            LimitsConfig { dollars_per_day: Some("0.000002".into()), ..LimitsConfig::default() },
            LimitsConfig::default(),
        );
        let alice = limiter.caller("alice");
        let noon = 10 * DAY_MS + DAY_MS / 2;
        assert_eq!(limiter.admit(&alice, noon), Ok(()));
        limiter.charge(&alice, 10, 1_999_999, noon);
        assert_eq!(limiter.admit(&alice, noon), Ok(()), "under the budget by one pico-dollar");
        limiter.charge(&alice, 10, 1, noon);
        let refusal = limiter.admit(&alice, noon).expect_err("the budget is spent");
        assert_eq!(refusal.retry_after_seconds, 43_200);
        assert!(refusal.message.contains("has spent its $0.000002 for today (UTC)"), "{}", refusal.message);
        assert_eq!(limiter.admit(&alice, 11 * DAY_MS), Ok(()), "a new day");
    }

    #[test]
    fn limits_refuse_zero_and_unreadable_dollars() {
        let zero = LimitsConfig { requests_per_minute: Some(0), ..LimitsConfig::default() };
        assert!(Limits::new(&zero).is_err());
        let dollars = LimitsConfig { dollars_per_day: Some("-1".into()), ..LimitsConfig::default() };
        assert!(Limits::new(&dollars).expect_err("negative").contains("dollars_per_day is `-1`"));
        let fine = LimitsConfig { dollars_per_day: Some("2.5".into()), ..LimitsConfig::default() };
        assert_eq!(Limits::new(&fine).map(|limits| limits.picodollars_per_day), Ok(Some(2_500_000_000_000)));
    }
}
