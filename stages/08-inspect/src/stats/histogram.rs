//! A fixed log-scale histogram of durations: cheap to record, mergeable, good for percentiles.
//!
//! Exit handling times span from under a microsecond to seconds, so buckets grow
//! geometrically: every power of two is split into four equal sub-buckets, so a bucket's
//! upper bound is at most 25 % above any value in it. Values below 4 ns have a bucket each.
//! 252 buckets cover all of `u64` nanoseconds, in 2 KiB; recording is an index computation
//! and one addition.
//!
//! # Resources
//! - HdrHistogram's idea (<http://hdrhistogram.org/>), here with 2 bits of precision.

/// Sub-buckets per power of two, as a bit count: 2 bits, 4 sub-buckets.
pub const SUB_BUCKET_BITS: u32 = 2;
/// Sub-buckets per power of two.
pub const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Buckets in all: exact ones below 4, then 4 per power of two from 2^2 to 2^63.
pub const BUCKETS: usize = SUB_BUCKETS + (64 - SUB_BUCKET_BITS as usize) * SUB_BUCKETS;

/// Counts of nanosecond durations in log-scale buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: Box<[u64; BUCKETS]>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { buckets: Box::new([0; BUCKETS]) }
    }
}

/// The bucket that holds `ns`.
pub fn bucket_of(ns: u64) -> usize {
    if ns < SUB_BUCKETS as u64 {
        return ns as usize;
    }
    let msb = 63 - ns.leading_zeros();
    let sub = (ns >> (msb - SUB_BUCKET_BITS)) as usize & (SUB_BUCKETS - 1);
    (msb - SUB_BUCKET_BITS + 1) as usize * SUB_BUCKETS + sub
}

/// The largest value bucket `index` holds.
pub fn bucket_upper_bound(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let shift = (index / SUB_BUCKETS) as u32 - 1;
    let first = (SUB_BUCKETS + index % SUB_BUCKETS) as u64;
    ((first + 1) << shift).wrapping_sub(1)
}

impl LatencyHistogram {
    /// Counts one duration of `ns` nanoseconds.
    pub fn record(&mut self, ns: u64) {
        self.buckets[bucket_of(ns)] += 1;
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine += theirs;
        }
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// An upper bound of the `percent` percentile (the bound of the bucket that holds it, at
    /// most 25 % above the true value); `None` when empty.
    pub fn percentile(&self, percent: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((percent / 100.0 * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (index, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_upper_bound(index));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_8_and_within_25_percent_above() {
        for ns in 0..8 {
            assert_eq!(bucket_upper_bound(bucket_of(ns)), ns);
        }
        for ns in [8u64, 9, 100, 1000, 65_535, 1 << 40, u64::MAX / 3, u64::MAX] {
            let bound = bucket_upper_bound(bucket_of(ns));
            assert!(bound >= ns && (bound - ns) as f64 <= ns as f64 * 0.25, "{ns} in a bucket up to {bound}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_upper_bound(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn bucket_bounds_grow_without_gaps() {
        for index in 1..BUCKETS {
            assert_eq!(bucket_of(bucket_upper_bound(index - 1) + 1), index, "{index}");
        }
    }

    #[test]
    fn the_99th_percentile_ignores_the_fastest_99() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.percentile(99.0), None);
        for _ in 0..990 {
            histogram.record(1_000);
        }
        for _ in 0..10 {
            histogram.record(1_000_000);
        }
        assert_eq!(histogram.count(), 1000);
        let p99 = histogram.percentile(99.0).unwrap();
        assert!((1_000..1_250).contains(&p99), "{p99}");
        let p100 = histogram.percentile(100.0).unwrap();
        assert!((1_000_000..1_250_000).contains(&p100), "{p100}");
    }

    #[test]
    fn merged_histograms_add_up() {
        let (mut a, mut b) = (LatencyHistogram::default(), LatencyHistogram::default());
        a.record(5);
        b.record(5);
        b.record(500);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.percentile(50.0), Some(5));
    }
}
