//! A bounded fuzz test of the decoders of SQLite's packed rows and pages, on stable: a
//! seeded generator builds valid rows and mutates them (bytes flipped, separators and
//! bytes that are not UTF-8 inserted, fields cut short or repeated), and every decoder
//! must return a value or a typed error for each, never panic, and read the unmutated
//! rows back exactly. `EVENTSOURCE_FUZZ_CASES` sets the number of cases (default 10,000);
//! `EVENTSOURCE_FUZZ_SEED` replays a run.

use super::fields::SEPARATOR;
use super::page::{Framing, PageText, Record};
use super::timestamp::{format_timestamp, parse_timestamp};
use super::unreadable::{unreadable, PAGE_COLUMNS, REPLAY_COLUMNS};
use super::{replay_row, row};
use crate::error::Error;
use crate::registry::EventRegistry;

/// xorshift64*: small, seeded, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn uuid(&mut self) -> String {
        uuid::Uuid::from_u64_pair(self.next(), self.next()).to_string()
    }
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A valid packed row (see `row::PACKED`) at `position`, and its version.
fn valid_row(rng: &mut Rng, position: u64) -> (String, u64) {
    let version = 1 + rng.next() % 1_000_000;
    let seconds = i64::try_from(rng.next() % 253_402_300_799).unwrap_or(0) - 62_135_596_800;
    let time = chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default();
    let optional_uuid = |rng: &mut Rng| {
        if rng.below(2) == 0 {
            String::new()
        } else {
            rng.uuid()
        }
    };
    let actor = rng
        .pick(&["\u{1e}", "", "ops", "é ☃", "a\u{1d}b"])
        .to_owned();
    let payload = rng.pick(&[
        "{}",
        "{\"title\":\"x\"}",
        "{\"n\":[1,2,{\"deep\":null}]}",
        "{\"s\":\"\\u001f\"}",
    ]);
    let fields = [
        version.to_string(),
        rng.uuid(),
        rng.uuid(),
        rng.pick(&["Task", "Order", "Ü"]).to_owned(),
        rng.pick(&["Created", "Done", "Änderung"]).to_owned(),
        optional_uuid(rng),
        actor,
        format_timestamp(time),
        format_timestamp(time),
        (1 + rng.next() % 5).to_string(),
        optional_uuid(rng),
        optional_uuid(rng),
        rng.pick(&["{}", "{\"k\":\"v\"}"]).to_owned(),
        payload.to_owned(),
    ];
    let sep = SEPARATOR.to_string();
    (format!("{position}{sep}{}", fields.join(&sep)), version)
}

/// `bytes` changed in one to four random ways.
fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    const INSERTS: [&[u8]; 8] = [
        b"\x1f", b"\x1d", b"\x1e", b"\xff", b"\xc3", b"-", b"0", b"\x00",
    ];
    for _ in 0..=rng.below(4) {
        let at = if bytes.is_empty() {
            0
        } else {
            rng.below(bytes.len())
        };
        match rng.below(6) {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << rng.below(8),
            1 => {
                let insert = INSERTS[rng.below(INSERTS.len())];
                bytes.splice(at..at, insert.iter().copied());
            }
            2 => bytes.truncate(at),
            3 if !bytes.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                let piece = bytes[at..end].to_vec();
                bytes.splice(at..at, piece);
            }
            4 if !bytes.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(bytes.len());
                bytes.drain(at..end);
            }
            _ => bytes.insert(at, u8::try_from(rng.below(256)).unwrap_or(0)),
        }
    }
    bytes
}

/// Every decoder on one record; panics only on a broken invariant.
fn decode_all(record: &[u8], registry: &EventRegistry) {
    let _ = unreadable(record, &PAGE_COLUMNS);
    let _ = unreadable(record, &REPLAY_COLUMNS);
    let Ok(text) = std::str::from_utf8(record) else {
        return;
    };
    let _ = row::stream_version(text);
    let _ = replay_row::decode_packed(text, registry);
    let _ = parse_timestamp(text);
    match row::decode(text, registry) {
        // No readable position: only when the text does not start with an integer.
        Err(Error::Database { .. }) => {
            let prefix = text.split(SEPARATOR).next().unwrap_or_default();
            assert!(prefix.parse::<i64>().is_err(), "{text:?}");
        }
        Err(other) => panic!("an outer error other than Database: {other:?}"),
        Ok((_, Ok(event))) => assert!(event.global_position >= 1 && event.stream_position >= 1),
        Ok((
            position,
            Err(Error::CorruptEvent {
                global_position, ..
            }),
        )) => assert_eq!(position, global_position, "{text:?}"),
        Ok((_, Err(other))) => panic!("an inner error other than CorruptEvent: {other:?}"),
    }
}

#[test]
fn decoders_return_a_value_or_a_typed_error_for_any_bytes() {
    let cases = setting("EVENTSOURCE_FUZZ_CASES", 10_000);
    let seed = setting("EVENTSOURCE_FUZZ_SEED", 0x5eed_f022);
    let mut rng = Rng(seed | 1);
    let registry = EventRegistry::new();
    for case in 0..cases {
        let position = 1 + rng.next() % 1_000_000;
        let (valid, version) = valid_row(&mut rng, position);
        // Unmutated, the row reads back whole.
        let (at, event) = row::decode(&valid, &registry)
            .unwrap_or_else(|e| panic!("case {case} (seed {seed}): {e}: {valid:?}"));
        let event = event.unwrap_or_else(|e| panic!("case {case} (seed {seed}): {e}"));
        assert_eq!((at, event.stream_position), (position, version));
        assert_eq!(row::stream_version(&valid), Some(version));

        let mutated = mutate(&mut rng, valid.clone().into_bytes());
        decode_all(&mutated, &registry);

        // A page of a few such rows, in either framing, splits without panicking, and
        // the rows of a separated page are its pieces.
        let rows: Vec<Vec<u8>> = (0..1 + rng.below(4))
            .map(|_| {
                let at = 1 + rng.next() % 1000;
                let (row, _) = valid_row(&mut rng, at);
                if rng.below(2) == 0 {
                    mutate(&mut rng, row.into_bytes())
                } else {
                    row.into_bytes()
                }
            })
            .collect();
        let separated = rows.join(&0x1d_u8);
        let prefixed: Vec<u8> = rows
            .iter()
            .flat_map(|r| [format!("{},", r.len()).into_bytes(), r.clone()].concat())
            .collect();
        let prefixed = if rng.below(4) == 0 {
            mutate(&mut rng, prefixed)
        } else {
            prefixed
        };
        for (body, framing) in [
            (separated, Framing::Separated),
            (prefixed, Framing::LengthPrefixed),
        ] {
            let page = PageText::from_bytes(body, framing, rows.len());
            for record in page.records() {
                match record {
                    Ok(Record::Text(text)) => decode_all(text.as_bytes(), &registry),
                    Ok(Record::NotUtf8(bytes)) => decode_all(bytes, &registry),
                    Err(Error::Database { .. }) => {}
                    Err(other) => panic!("a page error other than Database: {other:?}"),
                }
            }
        }
    }
}
