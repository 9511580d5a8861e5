//! Order statistics, and the ratio of two series taken pair by pair.

/// Median, 90th and 95th percentiles, min and max of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p90: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
}

/// The summary of `values` (`None` when empty). The median of an even count is
/// the mean of the two middle values; the percentiles are the nearest rank
/// (the smallest value with at least 90% or 95% of the values at or below it).
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let nearest_rank = |p: f64| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(Summary {
        n,
        median: median_of_sorted(&sorted),
        p90: nearest_rank(0.90),
        p95: nearest_rank(0.95),
        min: sorted[0],
        max: sorted[n - 1],
    })
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// The median of `x[i] / base[i]` over the runs both have: runs with the same
/// index were made in the same round, one right after the other, so each pair
/// saw the same state of the machine.
pub fn paired_ratio(x: &[f64], base: &[f64]) -> Option<f64> {
    let mut ratios: Vec<f64> =
        x.iter().zip(base).filter(|(a, b)| a.is_finite() && b.is_finite() && **b > 0.0).map(|(a, b)| a / b).collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    Some(median_of_sorted(&ratios))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_puts_every_runtime_first_in_turn() {
        let rounds: Vec<Vec<usize>> = (0..3).map(|r| crate::lifecycle::rotated(3, r).collect()).collect();
        assert_eq!(rounds, [[0, 1, 2], [1, 2, 0], [2, 0, 1]]);
        assert_eq!(crate::lifecycle::rotated(0, 5).count(), 0);
    }

    #[test]
    fn summary_of_an_odd_and_an_even_count() {
        let s = summarize(&[5.0, 1.0, 3.0]).expect("summary");
        assert_eq!((s.n, s.median, s.min, s.max, s.p95), (3, 3.0, 1.0, 5.0, 5.0));
        let s = summarize(&[4.0, 1.0, 3.0, 2.0]).expect("summary");
        assert_eq!(s.median, 2.5);
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn percentiles_are_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(&values).expect("summary");
        assert_eq!((s.p90, s.p95), (90.0, 95.0));
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = summarize(&values).expect("summary");
        assert_eq!((s.p90, s.p95), (18.0, 19.0));
        let s = summarize(&[7.0]).expect("summary");
        assert_eq!((s.p90, s.p95), (7.0, 7.0));
        let s = summarize(&[3.0, 1.0]).expect("summary");
        assert_eq!((s.p90, s.p95), (3.0, 3.0));
    }

    #[test]
    fn paired_ratio_is_the_median_of_the_pairs_not_the_ratio_of_medians() {
        // Drift: both slow down together in the last rounds. Pair by pair, x is
        // always half of base.
        let base = [10.0, 10.0, 40.0, 40.0, 40.0];
        let x = [5.0, 5.0, 20.0, 20.0, 20.0];
        assert_eq!(paired_ratio(&x, &base), Some(0.5));
        // Unequal lengths: only the common runs count; zeros in base are skipped.
        assert_eq!(paired_ratio(&[1.0, 2.0, 3.0], &[2.0, 0.0]), Some(0.5));
        assert_eq!(paired_ratio(&[1.0], &[]), None);
        // A failed run (NaN) leaves a gap; the other pairs keep their rounds.
        assert_eq!(paired_ratio(&[f64::NAN, 3.0, 4.0], &[1.0, 2.0, 4.0]), Some(1.25));
        let s = summarize(&[f64::NAN, 2.0]).expect("summary");
        assert_eq!((s.n, s.median), (1, 2.0));
        assert!(summarize(&[f64::NAN]).is_none());
    }
}
