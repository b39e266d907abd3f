//! Curves small enough to draw: largest-triangle-three-buckets (LTTB) picks the points of a long
//! series that keep its shape (peaks and dips survive, flat stretches thin out), and a debiased
//! exponential moving average smooths a noisy one (TensorBoard's rule, so the first points are
//! not dragged towards zero). Pure functions over slices; the routes decide how many points.

/// The indices of at most `points` points of `(xs, ys)` that keep its shape, in order: the first
/// and the last always, and in each of `points - 2` equal buckets between them the point making
/// the largest triangle with the previous pick and the next bucket's mean. Every index when the
/// series is no longer than `points`. Points whose `y` is not finite are skipped by the
/// triangles (the caller draws them as gaps). `xs` must be sorted.
pub fn lttb(xs: &[f64], ys: &[f64], points: usize) -> Vec<usize> {
    let length = xs.len().min(ys.len());
    if length <= points {
        return (0..length).collect();
    }
    if points < 3 {
        return [0, length - 1].into_iter().take(points).collect();
    }
    let mut picked = Vec::with_capacity(points);
    picked.push(0);
    let bucket = (length - 2) as f64 / (points - 2) as f64;
    let mut previous = 0usize;
    for index in 0..points - 2 {
        let start = 1 + (index as f64 * bucket) as usize;
        let end = (1 + ((index + 1) as f64 * bucket) as usize).min(length - 1);
        // The next bucket's mean (the last point, for the last bucket).
        let (next_start, next_end) = (end, (1 + ((index + 2) as f64 * bucket) as usize).min(length));
        let (mut mean_x, mut mean_y, mut count) = (0.0, 0.0, 0.0);
        for next in next_start..next_end.max(next_start + 1).min(length) {
            if ys[next].is_finite() {
                mean_x += xs[next];
                mean_y += ys[next];
                count += 1.0;
            }
        }
        if count > 0.0 {
            mean_x /= count;
            mean_y /= count;
        } else {
            (mean_x, mean_y) = (xs[length - 1], if ys[length - 1].is_finite() { ys[length - 1] } else { 0.0 });
        }
        let (anchor_x, anchor_y) = (xs[previous], if ys[previous].is_finite() { ys[previous] } else { mean_y });
        let mut best = None;
        let mut largest = -1.0;
        for candidate in start..end.max(start + 1) {
            if !ys[candidate].is_finite() {
                continue;
            }
            let area = ((anchor_x - mean_x) * (ys[candidate] - anchor_y)
                - (anchor_x - xs[candidate]) * (mean_y - anchor_y))
                .abs();
            if area > largest {
                largest = area;
                best = Some(candidate);
            }
        }
        if let Some(best) = best {
            picked.push(best);
            previous = best;
        }
    }
    picked.push(length - 1);
    picked
}

/// The debiased exponential moving average of `ys` with `weight` in [0, 1): `s = w·s + (1−w)·y`,
/// each output divided by `1 − wᵏ` after `k` finite values. Non-finite values pass through and do
/// not move the average. A weight of 0 returns the series unchanged.
pub fn smooth(ys: &[f64], weight: f64) -> Vec<f64> {
    let weight = if weight.is_finite() { weight.clamp(0.0, 0.999) } else { 0.0 };
    let mut average = 0.0;
    let mut seen = 0i32;
    ys.iter()
        .map(|&y| {
            if !y.is_finite() {
                return y;
            }
            average = weight * average + (1.0 - weight) * y;
            seen = seen.saturating_add(1);
            let debias = 1.0 - weight.powi(seen);
            if debias > 0.0 { average / debias } else { y }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{lttb, smooth};

    /// A seeded xorshift, so the property cases repeat.
    fn random(seed: &mut u64) -> f64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn short_series_are_kept_whole() {
        let xs = [0.0, 1.0, 2.0];
        assert_eq!(lttb(&xs, &[5.0, 6.0, 7.0], 10), vec![0, 1, 2]);
        assert_eq!(lttb(&[], &[], 10), Vec::<usize>::new());
    }

    #[test]
    fn picks_are_few_ordered_and_keep_both_ends() {
        let mut seed = 7u64;
        for case in 0..200 {
            let length = 3 + (random(&mut seed) * 5_000.0) as usize;
            let points = 3 + (random(&mut seed) * 300.0) as usize;
            let xs: Vec<f64> = (0..length).map(|index| index as f64).collect();
            let ys: Vec<f64> =
                (0..length).map(|_| if random(&mut seed) < 0.01 { f64::NAN } else { random(&mut seed) }).collect();
            let picked = lttb(&xs, &ys, points);
            assert!(picked.len() <= points.max(length.min(points)), "case {case}: {} > {points}", picked.len());
            assert_eq!(picked.first(), Some(&0), "case {case}");
            assert_eq!(picked.last(), Some(&(length - 1)), "case {case}");
            assert!(picked.windows(2).all(|pair| pair[0] < pair[1]), "case {case}: not increasing");
        }
    }

    #[test]
    fn a_lone_spike_survives() {
        let xs: Vec<f64> = (0..100_000).map(f64::from).collect();
        let mut ys = vec![1.0; 100_000];
        ys[61_234] = 50.0;
        let picked = lttb(&xs, &ys, 500);
        assert!(picked.contains(&61_234), "the spike was dropped");
        assert!(picked.len() <= 500);
    }

    #[test]
    fn smoothing_is_debiased_and_skips_gaps() {
        let constant = smooth(&[3.0, 3.0, 3.0], 0.9);
        assert!(
            constant.iter().all(|value| (value - 3.0).abs() < 1e-12),
            "a constant stays constant from the start: {constant:?}"
        );
        assert_eq!(smooth(&[1.0, 2.0], 0.0), vec![1.0, 2.0]);
        let smoothed = smooth(&[1.0, f64::NAN, 1.0], 0.5);
        assert!(smoothed[1].is_nan());
        assert!((smoothed[2] - 1.0).abs() < 1e-12);
        let noisy: Vec<f64> = (0..1000).map(|index| if index % 2 == 0 { 0.0 } else { 2.0 }).collect();
        let smoothed = smooth(&noisy, 0.95);
        assert!((smoothed[999] - 1.0).abs() < 0.1, "{}", smoothed[999]);
    }
}
