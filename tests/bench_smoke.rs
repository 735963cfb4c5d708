//! The benchmark at smoke scale, so it cannot rot: every workload runs through the
//! framework and raw sqlx and is checked for correctness. No timing is asserted.

#[path = "../benches/workloads_lib.rs"]
mod workloads_lib;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_at_smoke_scale() {
    let config = workloads_lib::Config {
        runs: 1,
        scale: 0.002,
        memory: true,
        ..workloads_lib::Config::default()
    };
    let mut out = Vec::new();
    let report = workloads_lib::run(&config, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(report.sqlite.len(), 7, "{text}");
    assert_eq!(report.sqlite[6].id, "W7");
    assert_eq!(report.memory.len(), 5);
    assert_eq!(report.w6_correct_rounds, report.w6_rounds);
    assert!(report
        .sqlite
        .iter()
        .all(|r| r.framework.median > 0.0 && r.raw.is_some()));
    assert!(text.contains("W5 catch-up"), "{text}");
    assert!(
        report.w3u.framework.median > 0.0 && report.w3u.ratio.is_some(),
        "{text}"
    );
    assert!(text.contains("W3u rehydrate-upcast"), "{text}");
    assert!(
        report
            .w8
            .iter()
            .all(|s| s.drained > 0 && s.drain_per_second > 0.0 && s.appended_per_second > 0.0),
        "{text}"
    );
    assert!(text.contains("W8 outbox-relay"), "{text}");
}

/// The PostgreSQL workloads at smoke scale (skipped, loudly, without a server).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_benchmark_runs_at_smoke_scale() {
    if eventsource_tests::postgres_harness::server().is_none() {
        return;
    }
    let config = workloads_lib::Config {
        runs: 1,
        scale: 0.002,
        postgres: true,
        postgres_only: true,
        ..workloads_lib::Config::default()
    };
    let mut out = Vec::new();
    let report = workloads_lib::run(&config, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(report.postgres.len(), 7, "{text}");
    assert!(
        report
            .postgres
            .iter()
            .all(|r| r.framework.median > 0.0 && r.raw.is_some()),
        "{text}"
    );
    let extras = report.postgres_extras.expect("PostgreSQL extras");
    assert!(extras.w7_over_w1 > 0.0, "{text}");
    assert!(
        extras
            .w8
            .iter()
            .all(|s| s.drained > 0 && s.appended_per_second > 0.0),
        "{text}"
    );
    assert!(text.contains("PostgreSQL W8 outbox-relay"), "{text}");
}
