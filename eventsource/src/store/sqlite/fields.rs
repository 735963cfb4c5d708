//! Splitting packed rows at U+001F eight bytes at a time.

/// The separator of the packed envelope (U+001F, the ASCII unit separator). Appends
/// refuse it in aggregate types, event types and actor ids.
pub(super) const SEPARATOR: char = '\u{1f}';

/// The index of the first `byte` (ASCII) in `text`: a char boundary. A byte loop: it
/// looks through a few digits.
fn find_byte(text: &str, byte: u8) -> Option<usize> {
    text.bytes().position(|b| b == byte)
}

/// `text` split at every U+001F into exactly `N` fields, in one pass; `None` for any other
/// number of fields.
///
/// The pass reads eight bytes at a time and finds the separators among them with word
/// arithmetic: envelope fields are 30-odd bytes, too short for `memchr` to make up its
/// cost per call, and a byte loop spends most of a page's decoding here.
pub(super) fn split_fields<const N: usize>(text: &str) -> Option<[&str; N]> {
    let bytes = text.as_bytes();
    let mut fields = [""; N];
    let (mut start, mut n) = (0, 0);
    let mut cut = |i: usize| -> Option<()> {
        // U+001F is ASCII: `start` and `i` are char boundaries.
        *fields.get_mut(n)? = &text[start..i];
        n += 1;
        start = i + 1;
        Some(())
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let mut found = separators_in(u64::from_le_bytes(word));
        while found != 0 {
            cut(base + found.trailing_zeros() as usize / 8)?;
            found &= found - 1;
        }
        base += 8;
    }
    for (i, &b) in chunks.remainder().iter().enumerate() {
        if b == SEPARATOR as u8 {
            cut(base + i)?;
        }
    }
    *fields.get_mut(n)? = &text[start..];
    (n + 1 == N).then_some(fields)
}

/// The high bit of every byte of `word` that is U+001F, and no other bit.
fn separators_in(word: u64) -> u64 {
    bytes_equal(word, SEPARATOR as u8)
}

/// The high bit of every byte of `word` that equals `byte`, and no other bit. Exact per
/// byte: adding 0x7F to the low seven bits never carries into the next byte.
pub(super) fn bytes_equal(word: u64, byte: u8) -> u64 {
    const LOW_SEVEN: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (0x0101_0101_0101_0101 * u64::from(byte));
    // A byte of `x` is zero exactly where `word` holds `byte`.
    !(((x & LOW_SEVEN) + LOW_SEVEN) | x) & HIGH
}

/// A packed row split into its position and the rest: the envelope fields and the
/// payload, which `row::Packed::parse` splits.
pub(super) fn split_row(text: &str) -> Option<(&str, &str)> {
    let first = find_byte(text, SEPARATOR as u8)?;
    Some((&text[..first], &text[first + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_at_every_separator_into_exactly_n() {
        assert_eq!(split_fields::<3>("a\u{1f}\u{1f}é"), Some(["a", "", "é"]));
        assert_eq!(split_fields::<3>("a\u{1f}b"), None);
        assert_eq!(split_fields::<2>("a\u{1f}b\u{1f}c"), None);
        assert_eq!(
            split_row("1\u{1f}x\u{1f}y\u{1f}{}"),
            Some(("1", "x\u{1f}y\u{1f}{}"))
        );
        assert_eq!(split_row("1{}"), None);
    }

    #[test]
    fn word_at_a_time_splitting_agrees_with_str_split() {
        // Separators at every offset of an eight-byte word, beside U+001E (one borrow away
        // from U+001F), U+009F-like multibyte text and the other control bytes.
        let pieces = [
            "",
            "a",
            "\u{1e}",
            "é",
            "0123456",
            "\u{1e}\u{1e}x",
            "\u{9f}",
            "\u{3f}",
        ];
        for len in 0..40 {
            for seed in 0..pieces.len() {
                let fields: Vec<String> = (0..4)
                    .map(|k| {
                        let piece = pieces[(seed + k * 3) % pieces.len()];
                        piece.repeat(1 + (len + k) % 5)
                    })
                    .collect();
                let text = format!("{}{}", "z".repeat(len), fields.join("\u{1f}"));
                let expected: Vec<&str> = text.split('\u{1f}').collect();
                assert_eq!(
                    split_fields::<4>(&text).map(Vec::from),
                    Some(expected),
                    "{text:?}"
                );
                assert_eq!(split_fields::<5>(&text), None, "{text:?}");
            }
        }
        assert_eq!(
            separators_in(u64::from_le_bytes(*b"\x1f\x1e\x1f\x9f\x00\x1f\xff\x3f")),
            0x8000_0080_0080
        );
    }
}
