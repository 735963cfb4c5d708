//! A process killed (`SIGKILL`) while 64 tasks append through group commit leaves only
//! whole appends, and every append it acknowledged is stored.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use eventsource::prelude::*;
use eventsource::SqliteEventStore;
use support::{collect, created, TempDir};
use uuid::Uuid;

const CHILD_DB: &str = "EVENTSOURCE_CRASH_CHILD_DB";
const WRITERS: usize = 64;
/// Events per append: a stream holding an odd number of events lost half an append.
const BATCH: u64 = 2;

/// The child: appends forever, printing each acknowledged append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by group_commit_survives_kill_9 as a child process"]
async fn child_group_writer() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return;
    };
    let store = Arc::new(SqliteEventStore::open(&path).await.unwrap());
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = Uuid::new_v4();
                let mut version = 0;
                loop {
                    let batch = (0..BATCH)
                        .map(|i| created(&format!("{version}-{i}")))
                        .collect();
                    let result = store
                        .append_events(id, "Task", batch, ExpectedVersion::from(version))
                        .await
                        .unwrap();
                    version = result.new_version;
                    println!("ACK {id} {version} {}", result.global_position);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_survives_kill_9() {
    let dir = TempDir::new();
    let path = dir.file("crash.db");
    let store = SqliteEventStore::open(&path).await.unwrap();
    store.initialize().await.unwrap();
    store.close().await;

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_group_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acknowledged: HashMap<Uuid, (u64, u64)> = HashMap::new();
    let mut seen = 0;
    let record = |line: &str, acknowledged: &mut HashMap<Uuid, (u64, u64)>| {
        let Some(rest) = line.split("ACK ").nth(1) else {
            return false;
        };
        let mut parts = rest.split_whitespace();
        let (Some(id), Some(version), Some(position)) = (parts.next(), parts.next(), parts.next())
        else {
            // The last line may be cut short by the kill.
            return false;
        };
        let (Ok(id), Ok(version), Ok(position)) = (id.parse(), version.parse(), position.parse())
        else {
            return false;
        };
        let entry = acknowledged.entry(id).or_insert((0, 0));
        *entry = (version, position).max(*entry);
        true
    };
    // Kill it mid-flight, once it has acknowledged a good number of appends.
    for line in lines.by_ref() {
        if record(&line.unwrap(), &mut acknowledged) {
            seen += 1;
            if seen == 3000 {
                break;
            }
        }
    }
    child.kill().unwrap();
    // Lines written before the kill are acknowledgements too.
    for line in lines {
        match line {
            Ok(line) => {
                record(&line, &mut acknowledged);
            }
            Err(_) => break,
        }
    }
    child.wait().unwrap();
    assert!(seen >= 3000, "the child stopped early");

    let store = SqliteEventStore::open(&path).await.unwrap();
    let all = collect(store.read_all(ReadOptions::new())).await;
    let positions: Vec<u64> = all.iter().map(|e| e.global_position).collect();
    assert_eq!(
        positions,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "positions with a gap"
    );
    let mut streams: HashMap<Uuid, Vec<u64>> = HashMap::new();
    for event in &all {
        streams
            .entry(event.aggregate_id())
            .or_default()
            .push(event.aggregate_version());
    }
    for (id, versions) in &streams {
        assert_eq!(
            versions,
            &(1..=versions.len() as u64).collect::<Vec<_>>(),
            "stream {id}"
        );
        assert_eq!(
            versions.len() as u64 % BATCH,
            0,
            "stream {id} holds part of an append"
        );
    }
    for (id, (version, position)) in &acknowledged {
        let stored = streams.get(id).map_or(0, Vec::len) as u64;
        assert!(
            stored >= *version,
            "stream {id}: acknowledged {version}, stored {stored}"
        );
        let event = &all[(*position - 1) as usize];
        assert_eq!(
            (event.aggregate_id(), event.aggregate_version()),
            (*id, *version)
        );
    }
    store.close().await;
}
