//! The benchmark's report: the tables it prints, and each workload's summaries and
//! ratios (framework over raw sqlx, and over the rusqlite limit).

use super::*;

pub(super) fn print_report(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "\nmedian of {} runs [min..max], scale {}; SQLite file, WAL, synchronous=NORMAL",
        report.runs, report.scale
    )?;
    let figure = |s: &Summary| format!("{:.0} [{:.0}..{:.0}]", s.median, s.min, s.max);
    let mb = |kb: u64| format!("{:.1} MB", kb as f64 / 1024.0);
    for (label, results) in [
        ("sqlite", &report.sqlite),
        ("memory", &report.memory),
        (
            "postgres (PostgreSQL, fsync=off unless EVENTSOURCE_BENCH_POSTGRES_URL)",
            &report.postgres,
        ),
    ] {
        if results.is_empty() {
            continue;
        }
        writeln!(out, "\n{label}:")?;
        writeln!(
            out,
            "{:<36} {:>30} {:>30} {:>6} {:>30} {:>6} {:>9} {:>9} {:>9}",
            "workload",
            "framework",
            "raw sqlx",
            "ratio",
            "limit (rusqlite)",
            "/limit",
            "RSS fw",
            "RSS raw",
            "RSS lim"
        )?;
        let ratio = |x: Option<f64>| x.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
        let rss = |s: Option<&Summary>| s.map(|s| mb(s.peak_rss_kb)).unwrap_or_else(|| "-".into());
        for r in results.iter() {
            writeln!(
                out,
                "{:<36} {:>30} {:>30} {:>6} {:>30} {:>6} {:>9} {:>9} {:>9}",
                format!("{} {} ({})", r.id, r.name, r.unit),
                figure(&r.framework),
                r.raw.as_ref().map(figure).unwrap_or_else(|| "-".into()),
                ratio(r.ratio),
                r.limit.as_ref().map(figure).unwrap_or_else(|| "-".into()),
                ratio(r.ratio_limit),
                mb(r.framework.peak_rss_kb),
                rss(r.raw.as_ref()),
                rss(r.limit.as_ref()),
            )?;
        }
    }
    writeln!(
        out,
        "\n{} {} ({}): {} through the framework, {:.2} of W3 (v1 rows read as v2)",
        report.w3u.id,
        report.w3u.name,
        report.w3u.unit,
        figure(&report.w3u.framework),
        report.w3u.ratio.unwrap_or(0.0)
    )?;
    writeln!(
        out,
        "\nW3 median per load: {:.2} ms; W6: exactly one winner in {}/{} rounds",
        report.w3_median_ms_per_load, report.w6_correct_rounds, report.w6_rounds
    )?;
    if !report.sqlite.is_empty() {
        let sqlite = Extras {
            w7_latency: report.w7_latency,
            w7_over_w1: report.w7_over_w1,
            w8: report.w8.clone(),
        };
        print_extras("SQLite", &sqlite, out)?;
    }
    if let Some(postgres) = &report.postgres_extras {
        print_extras("PostgreSQL", postgres, out)?;
    }
    for (events, before, peak) in &report.w3_rss_kb {
        writeln!(
            out,
            "W3 loading a {events}-event aggregate: RSS {} before, peak {} during (+{})",
            mb(*before),
            mb(*peak),
            mb(peak.saturating_sub(*before))
        )?;
    }
    for (events, kb) in &report.w4_rss_kb {
        writeln!(out, "W4 peak RSS reading {events} events: {}", mb(*kb))?;
    }
    Ok(())
}

/// W7's latencies and W8 of a backend.
fn print_extras(backend: &str, extras: &Extras, out: &mut dyn Write) -> std::io::Result<()> {
    let median = |mut values: Vec<f64>| {
        values.sort_by(|a, b| a.total_cmp(b));
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let [fw, raw] = extras.w7_latency;
    writeln!(
        out,
        "{backend} W7 concurrent-append ({} tasks): {:.2} of W1 through the framework; append latency p50 {:.2} ms, p99 {:.2} ms (raw: {:.2} ms, {:.2} ms)",
        w7::TASKS, extras.w7_over_w1, fw.p50_ms, fw.p99_ms, raw.p50_ms, raw.p99_ms
    )?;
    let w8 = &extras.w8;
    if !w8.is_empty() {
        writeln!(
            out,
            "{backend} W8 outbox-relay ({} writers, relay batches of {W8_BATCH}): appended {:.0} events/s, \
             published {:.0} entries/s, backlog at the end {} (max {}); drained {} entries at {:.0} entries/s",
            w7::TASKS,
            median(w8.iter().map(|s| s.appended_per_second).collect()),
            median(w8.iter().map(|s| s.published_per_second).collect()),
            w8.iter().map(|s| s.backlog_at_end).max().unwrap_or(0),
            w8.iter().map(|s| s.backlog_max).max().unwrap_or(0),
            w8.iter().map(|s| s.drained).max().unwrap_or(0),
            median(w8.iter().map(|s| s.drain_per_second).collect()),
        )?;
    }
    Ok(())
}

/// A workload's summaries and ratio.
pub(super) fn workload_result(
    (id, name, unit): (&'static str, &'static str, &'static str),
    samples: &Samples,
) -> WorkloadResult {
    let framework = summarize(&samples.framework);
    let raw = (!samples.raw.is_empty()).then(|| summarize(&samples.raw));
    let limit = (!samples.limit.is_empty()).then(|| summarize(&samples.limit));
    WorkloadResult {
        id,
        name,
        unit,
        framework,
        raw,
        ratio: raw.map(|r| framework.median / r.median.max(1e-9)),
        limit,
        ratio_limit: limit.map(|l| framework.median / l.median.max(1e-9)),
    }
}

/// The median p50 and p99 of several runs.
pub(super) fn median_latency(runs: &[w7::Latency]) -> w7::Latency {
    let median = |mut values: Vec<f64>| {
        values.sort_by(|a, b| a.total_cmp(b));
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    w7::Latency {
        p50_ms: median(runs.iter().map(|l| l.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|l| l.p99_ms).collect()),
    }
}
