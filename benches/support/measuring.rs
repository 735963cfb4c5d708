//! Measurements: operations per second and peak RSS of one sample, and the median, min
//! and max of several.

use super::*;

/// One measured figure: operations per second, and the peak RSS while measuring.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    pub per_second: f64,
    pub peak_rss_kb: u64,
}

/// Resets the process's peak RSS (Linux: `echo 5 > /proc/self/clear_refs`).
pub(super) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak RSS since the last reset, in KiB (0 where unknown).
pub(super) fn peak_rss_kb() -> u64 {
    status_kb("VmHWM:")
}

/// The process's RSS now, in KiB (0 where unknown).
pub(super) fn current_rss_kb() -> u64 {
    status_kb("VmRSS:")
}

/// A KiB figure of `/proc/self/status`.
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

pub(super) async fn measure<F, Fut>(operations: usize, work: F) -> BoxResult<Sample>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = BoxResult<()>>,
{
    reset_peak_rss();
    let start = Instant::now();
    work().await?;
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    Ok(Sample {
        per_second: operations as f64 / elapsed,
        peak_rss_kb: peak_rss_kb(),
    })
}

/// Median, min and max of samples.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub peak_rss_kb: u64,
}

pub(super) fn summarize(samples: &[Sample]) -> Summary {
    let mut values: Vec<f64> = samples.iter().map(|s| s.per_second).collect();
    values.sort_by(|a, b| a.total_cmp(b));
    Summary {
        median: values.get(values.len() / 2).copied().unwrap_or(0.0),
        min: values.first().copied().unwrap_or(0.0),
        max: values.last().copied().unwrap_or(0.0),
        peak_rss_kb: samples.iter().map(|s| s.peak_rss_kb).max().unwrap_or(0),
    }
}
