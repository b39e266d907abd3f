//! Paired evidence for a live comparison: champion and challenger scored the same labelled
//! requests, so a regression is judged by paired one-sided tests — McNemar's exact binomial test
//! on the requests where they disagree (recall, accuracy, false positives) and a paired z-test
//! on squared errors (RMSE) — rather than by comparing two noisy averages.

use std::collections::HashMap;

use causeway_types::LabelRecord;
use serde::{Deserialize, Serialize};

use crate::outcomes::Judging;
use crate::predlog::PredictionRecord;
use crate::summary::{Judged, PairedSums};

/// Counts of the requests where the two versions disagree, and paired error differences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PairedEvidence {
    /// Labelled requests both versions scored.
    pub pairs: u64,
    /// Binary: labelled positives.
    pub positives: u64,
    /// Binary: positives the champion caught and the challenger missed.
    pub positives_lost: u64,
    /// Binary: positives the challenger caught and the champion missed.
    pub positives_won: u64,
    /// Binary: labelled negatives.
    pub negatives: u64,
    /// Binary: negatives only the challenger flagged.
    pub false_alarms_added: u64,
    /// Binary: negatives only the champion flagged.
    pub false_alarms_removed: u64,
    /// Binary: negatives the challenger flagged.
    pub challenger_false_alarms: u64,
    /// Multi-class: requests only the champion got right.
    pub right_lost: u64,
    /// Multi-class: requests only the challenger got right.
    pub right_won: u64,
    /// Regression: mean of (challenger squared error − `1 + tolerance` squared × champion's).
    pub error_difference_mean: f64,
    /// Regression: its standard deviation.
    pub error_difference_deviation: f64,
}

/// Pairs the labelled predictions of `champion` and `challenger` by request id.
/// `rmse_tolerance` scales the champion's squared errors (the regression bound).
pub fn paired_evidence(
    records: &[PredictionRecord],
    labels: &HashMap<String, LabelRecord>,
    judging: &HashMap<u32, Judging>,
    champion: u32,
    challenger: u32,
    rmse_tolerance: f64,
) -> PairedEvidence {
    let by_request = |version: u32| -> HashMap<&str, &PredictionRecord> {
        records
            .iter()
            .filter(|record| record.version == version)
            .map(|record| (record.request_id.as_str(), record))
            .collect()
    };
    let (old, new) = (by_request(champion), by_request(challenger));
    let (Some(old_judging), Some(new_judging)) = (judging.get(&champion), judging.get(&challenger)) else {
        return PairedEvidence::default();
    };
    let scale = (1.0 + rmse_tolerance).powi(2);
    let judged = |record: &PredictionRecord, judging: &Judging| Judged {
        judging: *judging,
        score: record.score,
        prediction: record.prediction,
    };
    let mut sums = PairedSums::default();
    for (request, old_record) in &old {
        let (Some(new_record), Some(label)) = (new.get(request), labels.get(*request)) else { continue };
        sums.add(judged(old_record, old_judging), judged(new_record, new_judging), label.label, scale);
    }
    sums.evidence()
}

/// P(X ≥ `successes`) for X ~ Binomial(`trials`, ½): McNemar's exact one-sided p-value that the
/// `successes` side of `trials` discordant pairs is larger by chance.
pub fn binomial_half_tail(successes: u64, trials: u64) -> f64 {
    if successes == 0 {
        return 1.0;
    }
    if successes > trials {
        return 0.0;
    }
    if trials > 2_000 {
        // Normal approximation with continuity correction.
        let n = trials as f64;
        let z = (successes as f64 - 0.5 - n / 2.0) / (n / 4.0).sqrt();
        return normal_upper_tail(z);
    }
    // Σ_{k ≥ s} C(n, k) / 2^n, in logs.
    let n = trials;
    let mut log_choose = 0.0f64; // ln C(n, 0)
    let mut terms = Vec::with_capacity(n as usize + 1);
    for k in 0..=n {
        if k > 0 {
            log_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        if k >= successes {
            terms.push(log_choose - n as f64 * std::f64::consts::LN_2);
        }
    }
    let largest = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (largest + terms.iter().map(|term| (term - largest).exp()).sum::<f64>().ln()).exp().min(1.0)
}

/// P(Z > `z`) for a standard normal Z.
pub fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Chebyshev fit, relative error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let polynomial = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * polynomial.exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

/// The one-sided p-value that a true rate of `rate` yields `observed` or more events in
/// `trials` (normal approximation with continuity correction; close enough for the counts a
/// canary sees).
pub fn rate_exceeds_p_value(observed: u64, trials: u64, rate: f64) -> f64 {
    if trials == 0 || observed == 0 {
        return 1.0;
    }
    let n = trials as f64;
    let deviation = (n * rate * (1.0 - rate)).sqrt().max(f64::MIN_POSITIVE);
    normal_upper_tail((observed as f64 - 0.5 - n * rate) / deviation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binomial_tail_matches_known_values() {
        // P(X ≥ 8 | n = 10, p = ½) = 56 / 1024.
        assert!((binomial_half_tail(8, 10) - 56.0 / 1024.0).abs() < 1e-12);
        assert!((binomial_half_tail(5, 10) - 638.0 / 1024.0).abs() < 1e-12);
        assert_eq!(binomial_half_tail(0, 10), 1.0);
        // The normal approximation joins the exact sum smoothly.
        let exact = binomial_half_tail(1_050, 2_000);
        let approximate = binomial_half_tail(1_051, 2_002);
        assert!((exact - approximate).abs() < 0.01, "{exact} {approximate}");
        assert!((normal_upper_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_upper_tail(-1.644_854) - 0.95).abs() < 1e-6);
    }

    fn record(request: &str, version: u32, score: f64, prediction: f64) -> PredictionRecord {
        PredictionRecord {
            request_id: request.into(),
            timestamp_ms: 0,
            model: "m".into(),
            version,
            role: crate::Role::Served,
            score,
            prediction,
            latency_us: 1,
            features: Vec::new(),
        }
    }

    #[test]
    fn pairs_count_where_the_versions_disagree() {
        let labels: HashMap<String, LabelRecord> = [("a", 1.0), ("b", 1.0), ("c", 0.0), ("d", 0.0)]
            .into_iter()
            .map(|(id, label)| (id.to_string(), LabelRecord { label, arrived_ms: 0 }))
            .collect();
        let records = vec![
            record("a", 1, 0.9, 0.9),
            record("a", 2, 0.1, 0.1),
            record("b", 1, 0.2, 0.2),
            record("b", 2, 0.8, 0.8),
            record("c", 1, 0.1, 0.1),
            record("c", 2, 0.9, 0.9),
            record("d", 1, 0.1, 0.1),
            record("e", 2, 0.9, 0.9),
        ];
        let judging = HashMap::from([(1, Judging::binary(0.5)), (2, Judging::binary(0.5))]);
        let evidence = paired_evidence(&records, &labels, &judging, 1, 2, 0.0);
        assert_eq!(evidence.pairs, 3, "d has no challenger record, e no label");
        assert_eq!((evidence.positives, evidence.positives_lost, evidence.positives_won), (2, 1, 1));
        assert_eq!((evidence.negatives, evidence.false_alarms_added, evidence.challenger_false_alarms), (1, 1, 1));
    }
}
