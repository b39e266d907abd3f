//! A seeded, deterministic generator of card transactions with fraud, in three phases:
//! stable, covariate drift (amounts grow and the merchant and channel mix shifts) and concept
//! drift (a new fraud tactic appears in a region that used to be benign). Labels arrive late.
//!
//! The same seed and configuration always give the same transactions, day by day: each day draws
//! from its own sub-stream, so generating day 40 does not require generating days 0 to 39.

use causeway_types::{DAY_MS, SeededRng};

use crate::error::Result;
use crate::frame::{Column, Frame};

/// Merchant categories, in a fixed order.
pub const CATEGORIES: [&str; 10] = [
    "grocery",
    "restaurants",
    "fuel",
    "travel",
    "electronics",
    "fashion",
    "digital_goods",
    "gambling",
    "health",
    "utilities",
];
/// Payment channels, in a fixed order.
pub const CHANNELS: [&str; 3] = ["in_store", "online", "mobile_app"];

const STABLE_CATEGORY_WEIGHTS: [f64; 10] = [0.26, 0.17, 0.12, 0.04, 0.06, 0.10, 0.09, 0.02, 0.08, 0.06];
const DRIFTED_CATEGORY_WEIGHTS: [f64; 10] = [0.13, 0.14, 0.09, 0.10, 0.15, 0.13, 0.12, 0.03, 0.06, 0.05];
const FRAUD_CATEGORY_WEIGHTS: [f64; 10] = [0.03, 0.02, 0.02, 0.20, 0.33, 0.12, 0.08, 0.18, 0.01, 0.01];
const CATEGORY_AMOUNT_FACTOR: [f64; 10] = [1.0, 0.8, 1.1, 4.0, 3.0, 1.6, 0.4, 1.5, 1.2, 1.8];
const HOUR_WEIGHTS: [f64; 24] = [
    0.3, 0.2, 0.15, 0.1, 0.1, 0.2, 0.5, 1.0, 1.4, 1.5, 1.5, 1.6, 1.8, 1.6, 1.5, 1.5, 1.6, 1.8, 2.0, 1.9, 1.6, 1.2, 0.8,
    0.5,
];
const DIGITAL_GOODS: usize = 6;
const MOBILE_APP: usize = 2;

/// The shape and story of the generated data.
#[derive(Debug, Clone, PartialEq)]
pub struct FraudConfig {
    /// The seed; the same seed gives the same data.
    pub seed: u64,
    /// Midnight (UTC, epoch ms) of day 0.
    pub start_ms: i64,
    /// Number of customers.
    pub customers: usize,
    /// Number of merchants.
    pub merchants: usize,
    /// Transactions per day.
    pub transactions_per_day: usize,
    /// First day of covariate drift.
    pub covariate_drift_day: u32,
    /// First day of concept drift (the new fraud tactic).
    pub concept_drift_day: u32,
    /// Label delay range in days (uniform).
    pub label_delay_days: (f64, f64),
}

impl Default for FraudConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            start_ms: 1_767_225_600_000,
            customers: 3_000,
            merchants: 400,
            transactions_per_day: 2_500,
            covariate_drift_day: 59,
            concept_drift_day: 73,
            label_delay_days: (1.0, 5.0),
        }
    }
}

/// Which part of the story a day belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Nothing changes.
    Stable,
    /// Inputs shift; the fraud mechanism does not.
    CovariateDrift,
    /// Inputs stay shifted and a new fraud tactic appears.
    ConceptDrift,
}

impl Phase {
    /// A short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::CovariateDrift => "covariate drift",
            Self::ConceptDrift => "concept drift",
        }
    }
}

/// What really happened in a transaction (known to the generator only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// An ordinary purchase.
    Legitimate,
    /// The classic stolen-card pattern: large, far away, new device, risky IP, at night.
    ClassicFraud,
    /// The new tactic (card testing): bursts of small digital-goods purchases through the mobile
    /// app from half-trusted devices; nothing the classic pattern taught a model to fear.
    NewTactic,
}

/// One card transaction with its (delayed) label.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// Unique id; also the prediction request id.
    pub transaction_id: String,
    /// The card holder.
    pub customer_id: String,
    /// The merchant.
    pub merchant_id: String,
    /// The device used.
    pub device_id: String,
    /// Event time (epoch ms).
    pub timestamp: i64,
    /// Amount in the account currency.
    pub amount: f64,
    /// One of [`CATEGORIES`].
    pub merchant_category: &'static str,
    /// One of [`CHANNELS`].
    pub channel: &'static str,
    /// Hour of day (0–23).
    pub hour: i64,
    /// Kilometres between the transaction and the customer's home.
    pub distance_from_home: f64,
    /// 1 when the card was physically present.
    pub card_present: i64,
    /// 1 when the device was never seen for this customer.
    pub is_new_device: i64,
    /// 1 when the transaction is abroad.
    pub is_foreign: i64,
    /// Age of the customer's account in days.
    pub customer_age_days: i64,
    /// Device fingerprint trust (0–1, higher is safer).
    pub device_trust_score: f64,
    /// IP reputation risk (0–1).
    pub ip_risk_score: f64,
    /// E-mail domain risk (0–1).
    pub email_domain_risk: f64,
    /// Items in the basket.
    pub num_items: i64,
    /// The customer's transactions in the last hour, as reported upstream.
    pub velocity_1h: i64,
    /// Merchant chargeback risk (0–1).
    pub merchant_risk_score: f64,
    /// Failed logins on the account in the last 24 hours.
    pub failed_logins_24h: i64,
    /// 1 on Saturdays and Sundays.
    pub is_weekend: i64,
    /// The ground truth.
    pub is_fraud: bool,
    /// When the label becomes known (epoch ms).
    pub label_arrival_ms: i64,
    /// What really happened.
    pub pattern: Pattern,
}

#[derive(Debug, Clone)]
struct Customer {
    id: String,
    typical_amount: f64,
    account_age_days: i64,
    channel_weights: [f64; 3],
}

#[derive(Debug, Clone)]
struct Merchant {
    id: String,
    risk: f64,
}

/// Generates transactions day by day.
#[derive(Debug, Clone)]
pub struct FraudGenerator {
    config: FraudConfig,
    customers: Vec<Customer>,
    cumulative_activity: Vec<f64>,
    merchants_by_category: Vec<Vec<Merchant>>,
}

impl FraudGenerator {
    /// Builds the population (customers and merchants) from the seed.
    pub fn new(config: FraudConfig) -> Self {
        let mut rng = SeededRng::derive(config.seed, "population");
        let mut customers = Vec::with_capacity(config.customers);
        let mut cumulative_activity = Vec::with_capacity(config.customers);
        let mut total = 0.0;
        for index in 0..config.customers.max(1) {
            let preference = [0.55 + 0.2 * rng.normal(), 0.25 + 0.1 * rng.normal(), 0.2 + 0.1 * rng.normal()];
            customers.push(Customer {
                id: format!("c{index:05}"),
                typical_amount: (3.6 + 0.6 * rng.normal()).exp(),
                account_age_days: 30 + rng.below(3_000) as i64,
                channel_weights: preference.map(|weight| weight.max(0.03)),
            });
            total += (0.5 * rng.normal()).exp();
            cumulative_activity.push(total);
        }
        let mut merchants_by_category = vec![Vec::new(); CATEGORIES.len()];
        for index in 0..config.merchants.max(CATEGORIES.len()) {
            let category = index % CATEGORIES.len();
            let base = if matches!(CATEGORIES[category], "gambling" | "electronics" | "travel") { 0.25 } else { 0.05 };
            merchants_by_category[category]
                .push(Merchant { id: format!("m{index:04}"), risk: base + 0.5 * rng.uniform().powi(2) });
        }
        Self { config, customers, cumulative_activity, merchants_by_category }
    }

    /// The configuration.
    pub fn config(&self) -> &FraudConfig {
        &self.config
    }

    /// The phase of `day`.
    pub fn phase(&self, day: u32) -> Phase {
        if day >= self.config.concept_drift_day {
            Phase::ConceptDrift
        } else if day >= self.config.covariate_drift_day {
            Phase::CovariateDrift
        } else {
            Phase::Stable
        }
    }

    /// Midnight of `day` (epoch ms).
    pub fn day_start_ms(&self, day: u32) -> i64 {
        self.config.start_ms + i64::from(day) * DAY_MS
    }

    /// The transactions of `day`, sorted by time.
    pub fn day(&self, day: u32) -> Vec<Transaction> {
        let mut rng = SeededRng::derive(self.config.seed, &format!("day-{day}"));
        let phase = self.phase(day);
        let day_start = self.day_start_ms(day);
        let is_weekend = i64::from((day + 3) % 7 >= 5);
        let mut transactions: Vec<Transaction> = (0..self.config.transactions_per_day)
            .map(|_| self.transaction(&mut rng, phase, day, day_start, is_weekend))
            .collect();
        transactions.sort_by_key(|transaction| transaction.timestamp);
        for (index, transaction) in transactions.iter_mut().enumerate() {
            transaction.transaction_id = format!("t{day:04}-{index:05}");
        }
        transactions
    }

    /// The transactions of days `first..last` (exclusive), sorted by time.
    pub fn days(&self, first: u32, last: u32) -> Vec<Transaction> {
        (first..last).flat_map(|day| self.day(day)).collect()
    }

    fn transaction(&self, rng: &mut SeededRng, phase: Phase, day: u32, day_start: i64, is_weekend: i64) -> Transaction {
        let drifted = phase != Phase::Stable;
        let amount_scale = if drifted { 1.6 } else { 1.0 };
        let target = rng.uniform() * self.cumulative_activity.last().copied().unwrap_or(1.0);
        let customer_index =
            self.cumulative_activity.partition_point(|cumulative| *cumulative < target).min(self.customers.len() - 1);
        let customer = &self.customers[customer_index];
        let pattern = if phase == Phase::ConceptDrift && rng.chance(0.018) {
            Pattern::NewTactic
        } else if rng.chance(0.028) {
            Pattern::ClassicFraud
        } else {
            Pattern::Legitimate
        };

        let category = match pattern {
            Pattern::Legitimate => {
                rng.weighted(if drifted { &DRIFTED_CATEGORY_WEIGHTS } else { &STABLE_CATEGORY_WEIGHTS })
            }
            Pattern::ClassicFraud => rng.weighted(&FRAUD_CATEGORY_WEIGHTS),
            Pattern::NewTactic => DIGITAL_GOODS,
        };
        let mut channel = match pattern {
            Pattern::Legitimate => {
                let mut weights = customer.channel_weights;
                if drifted {
                    weights[1] *= 1.8;
                    weights[2] *= 1.3;
                }
                rng.weighted(&weights)
            }
            Pattern::ClassicFraud => rng.weighted(&[0.12, 0.6, 0.28]),
            Pattern::NewTactic => MOBILE_APP,
        };
        if category == DIGITAL_GOODS && channel == 0 {
            channel = 1;
        }
        let merchants = &self.merchants_by_category[category];
        let merchant = &merchants[if pattern == Pattern::NewTactic {
            rng.below(3.min(merchants.len()))
        } else {
            rng.below(merchants.len())
        }];
        let fraudy = |rng: &mut SeededRng| pattern == Pattern::ClassicFraud && rng.chance(0.65);

        let hour = if fraudy(rng) { rng.below(6) } else { rng.weighted(&HOUR_WEIGHTS) };
        let timestamp = day_start + hour as i64 * 3_600_000 + rng.below(3_600_000) as i64;
        let amount = match pattern {
            Pattern::Legitimate => {
                customer.typical_amount * CATEGORY_AMOUNT_FACTOR[category] * (0.55 * rng.normal()).exp()
            }
            Pattern::ClassicFraud => customer.typical_amount * (1.3 + 0.6 * rng.normal()).exp(),
            Pattern::NewTactic => rng.range(1.0, 15.0),
        } * amount_scale;
        let card_present = i64::from(channel == 0 && rng.chance(0.98));
        let is_foreign = i64::from(if fraudy(rng) {
            rng.chance(0.6)
        } else {
            rng.chance(if CATEGORIES[category] == "travel" { 0.25 } else { 0.015 })
        });
        let mut distance = if fraudy(rng) {
            (400f64.ln() + rng.normal()).exp()
        } else if channel == 0 {
            (6f64.ln() + 0.8 * rng.normal()).exp()
        } else {
            (15f64.ln() + rng.normal()).exp()
        };
        if CATEGORIES[category] == "travel" {
            distance *= 20.0;
        }
        if is_foreign == 1 {
            distance += rng.range(800.0, 5_000.0);
        }
        let is_new_device = i64::from(match pattern {
            Pattern::NewTactic => rng.chance(0.35),
            _ if fraudy(rng) => true,
            _ => rng.chance(if channel == 0 { 0.01 } else { 0.05 }),
        });
        let device_trust_score = match pattern {
            Pattern::NewTactic => rng.range(0.35, 0.65),
            _ if fraudy(rng) => rng.range(0.05, 0.4),
            _ if is_new_device == 1 => rng.range(0.2, 0.6),
            _ => 0.5 + 0.5 * rng.uniform().powf(0.6),
        };
        let ip_risk_score = match pattern {
            _ if fraudy(rng) => rng.range(0.55, 1.0),
            _ => (0.4 * rng.uniform().powi(2) + 0.2 * is_foreign as f64).min(1.0),
        };
        let email_domain_risk = match pattern {
            _ if fraudy(rng) => rng.range(0.3, 0.9),
            _ => 0.5 * rng.uniform().powi(3),
        };
        let num_items = if category == DIGITAL_GOODS { 1 } else { 1 + rng.below(4) as i64 };
        let velocity_1h = match pattern {
            Pattern::NewTactic => 4 + rng.below(6) as i64,
            _ => rng.weighted(&[0.7, 0.2, 0.07, 0.03]) as i64,
        };
        let failed_logins_24h =
            if fraudy(rng) { 2 + rng.below(5) as i64 } else { rng.weighted(&[0.9, 0.07, 0.03]) as i64 };
        let device_id = if is_new_device == 1 {
            format!("d-new-{:08x}", rng.next_u64() as u32)
        } else {
            format!("d{}-{}", &customer.id[1..], rng.below(2))
        };

        let is_fraud = match pattern {
            Pattern::Legitimate => rng.chance(0.002),
            Pattern::ClassicFraud => {
                let strong = (is_new_device == 1 && ip_risk_score > 0.6)
                    || (distance > 250.0 && card_present == 0)
                    || failed_logins_24h >= 3;
                rng.chance(if strong { 0.92 } else { 0.3 })
            }
            Pattern::NewTactic => rng.chance(0.88),
        };
        let (low, high) = self.config.label_delay_days;
        let label_arrival_ms = timestamp + (rng.range(low, high.max(low)) * DAY_MS as f64) as i64;
        Transaction {
            transaction_id: String::new(),
            customer_id: customer.id.clone(),
            merchant_id: merchant.id.clone(),
            device_id,
            timestamp,
            amount: (amount * 100.0).round() / 100.0,
            merchant_category: CATEGORIES[category],
            channel: CHANNELS[channel],
            hour: hour as i64,
            distance_from_home: (distance * 10.0).round() / 10.0,
            card_present,
            is_new_device,
            is_foreign,
            customer_age_days: customer.account_age_days + i64::from(day),
            device_trust_score,
            ip_risk_score,
            email_domain_risk,
            num_items,
            velocity_1h,
            merchant_risk_score: merchant.risk,
            failed_logins_24h,
            is_weekend,
            is_fraud,
            label_arrival_ms,
            pattern,
        }
    }
}

/// The columns of a transaction frame, in order (the label `is_fraud` comes last).
pub const COLUMNS: [&str; 23] = [
    "transaction_id",
    "customer_id",
    "merchant_id",
    "device_id",
    "timestamp",
    "amount",
    "merchant_category",
    "channel",
    "hour",
    "distance_from_home",
    "card_present",
    "is_new_device",
    "is_foreign",
    "customer_age_days",
    "device_trust_score",
    "ip_risk_score",
    "email_domain_risk",
    "num_items",
    "velocity_1h",
    "merchant_risk_score",
    "failed_logins_24h",
    "is_weekend",
    "is_fraud",
];

/// Transactions as a frame. Without labels, `is_fraud` is present but null (labels come later).
pub fn to_frame(transactions: &[Transaction], with_labels: bool) -> Result<Frame> {
    let text = |get: fn(&Transaction) -> &str| {
        Column::Utf8(transactions.iter().map(|row| Some(get(row).to_string())).collect())
    };
    let integer = |get: fn(&Transaction) -> i64| Column::Int64(transactions.iter().map(|row| Some(get(row))).collect());
    let float = |get: fn(&Transaction) -> f64| Column::Float64(transactions.iter().map(|row| Some(get(row))).collect());
    Frame::new()
        .with_column("transaction_id", text(|row| &row.transaction_id))?
        .with_column("customer_id", text(|row| &row.customer_id))?
        .with_column("merchant_id", text(|row| &row.merchant_id))?
        .with_column("device_id", text(|row| &row.device_id))?
        .with_column("timestamp", integer(|row| row.timestamp))?
        .with_column("amount", float(|row| row.amount))?
        .with_column("merchant_category", text(|row| row.merchant_category))?
        .with_column("channel", text(|row| row.channel))?
        .with_column("hour", integer(|row| row.hour))?
        .with_column("distance_from_home", float(|row| row.distance_from_home))?
        .with_column("card_present", integer(|row| row.card_present))?
        .with_column("is_new_device", integer(|row| row.is_new_device))?
        .with_column("is_foreign", integer(|row| row.is_foreign))?
        .with_column("customer_age_days", integer(|row| row.customer_age_days))?
        .with_column("device_trust_score", float(|row| row.device_trust_score))?
        .with_column("ip_risk_score", float(|row| row.ip_risk_score))?
        .with_column("email_domain_risk", float(|row| row.email_domain_risk))?
        .with_column("num_items", integer(|row| row.num_items))?
        .with_column("velocity_1h", integer(|row| row.velocity_1h))?
        .with_column("merchant_risk_score", float(|row| row.merchant_risk_score))?
        .with_column("failed_logins_24h", integer(|row| row.failed_logins_24h))?
        .with_column("is_weekend", integer(|row| row.is_weekend))?
        .with_column(
            "is_fraud",
            Column::Int64(transactions.iter().map(|row| with_labels.then_some(i64::from(row.is_fraud))).collect()),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(seed: u64) -> FraudGenerator {
        FraudGenerator::new(FraudConfig { seed, transactions_per_day: 3_000, ..FraudConfig::default() })
    }

    #[test]
    fn same_seed_same_day_and_days_are_independent() {
        let first = generator(1).day(10);
        let again = generator(1).day(10);
        let other_seed = generator(2).day(10);
        assert_eq!(first, again);
        assert_ne!(first, other_seed);
        assert!(first.windows(2).all(|pair| pair[0].timestamp <= pair[1].timestamp));
        let start = generator(1).day_start_ms(10);
        assert!(first.iter().all(|row| row.timestamp >= start && row.timestamp < start + DAY_MS));
        assert!(first.iter().all(|row| row.label_arrival_ms >= row.timestamp + DAY_MS));
    }

    #[test]
    fn fraud_rate_is_between_two_and_five_percent_in_every_phase() {
        let generator = generator(3);
        for day in [5, 65, 80] {
            let rows = generator.days(day, day + 3);
            let rate = rows.iter().filter(|row| row.is_fraud).count() as f64 / rows.len() as f64;
            assert!((0.02..=0.05).contains(&rate), "day {day}: {rate}");
        }
    }

    #[test]
    fn phases_shift_inputs_and_add_the_new_tactic() {
        let generator = generator(4);
        let mean_amount = |rows: &[Transaction]| rows.iter().map(|row| row.amount).sum::<f64>() / rows.len() as f64;
        let stable = generator.days(20, 23);
        let covariate = generator.days(60, 63);
        let concept = generator.days(80, 83);
        assert!(mean_amount(&covariate) > 1.3 * mean_amount(&stable));
        assert!(stable.iter().chain(&covariate).all(|row| row.pattern != Pattern::NewTactic));
        let new_tactic = concept.iter().filter(|row| row.pattern == Pattern::NewTactic).count();
        assert!(new_tactic > 100, "{new_tactic}");
    }

    #[test]
    fn frame_has_every_column_and_hides_labels_on_request() -> Result<()> {
        let rows = generator(5).day(0);
        let labelled = to_frame(&rows, true)?;
        assert_eq!(labelled.names(), COLUMNS);
        assert_eq!(labelled.rows(), rows.len());
        let unlabelled = to_frame(&rows, false)?;
        assert!(unlabelled.require("is_fraud")?.is_null(0));
        Ok(())
    }
}
