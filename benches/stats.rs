//! Percentiles over measured durations, shared by the latency benchmarks.

use std::time::Duration;

/// p50, p99 and mean of a sample, in microseconds.
pub struct Summary {
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub n: usize,
}

pub fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let n = samples.len().max(1);
    let at = |q: f64| {
        let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    let total: Duration = samples.iter().sum();
    Summary {
        p50_us: at(0.50),
        p99_us: at(0.99),
        mean_us: total.as_secs_f64() * 1e6 / n as f64,
        n: samples.len(),
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.0} µs | p99 {:.0} µs | mean {:.0} µs | n {}",
            self.p50_us, self.p99_us, self.mean_us, self.n
        )
    }
}
