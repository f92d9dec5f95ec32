//! Decodes JSON lines of flat records (text, whole numbers, decimals, true/false, dates and
//! timestamps written as text) straight into Arrow columns.
//!
//! arrow-json first writes every value onto a tape and then copies it into the columns; on
//! the files analysts export from SaaS apps (flat records, a few hundred bytes each) that
//! decoding was half of a whole run's CPU. Here each value is parsed once and appended to its
//! column. It only covers what it can decode exactly as arrow-json would: a chunk holding
//! anything else (a nested value, a number where text belongs, a doubled key, a line that
//! is not one object) is left to arrow-json, whose answer — or whose error, which leads to
//! the per-line path with line numbers — stands. So this is purely a faster road to the
//! same batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::timezone::Tz;
use arrow::array::{
    ArrayRef, BooleanArray, BooleanBufferBuilder, Date32Array, Float64Array, Int64Array,
    NullBufferBuilder, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::kernels::cast_utils::{Parser as _, string_to_datetime};
use arrow::datatypes::{DataType, Date32Type, SchemaRef, TimeUnit};
use chrono::{TimeZone, Utc};

/// The column layout of one schema, worked out once per file.
pub(crate) struct FlatJson {
    schema: SchemaRef,
    names: Vec<Box<[u8]>>,
    kinds: Vec<Kind>,
    index: foldhash::HashMap<Box<[u8]>, usize>,
    /// Give back chunks holding a key the schema lacks.
    strict: bool,
    /// Bytes a record each text column took in the last chunk decoded: its buffer is sized
    /// from that, since growing a long field's buffer (descriptions) copied it over and over.
    /// Chunks are decoded on several threads at once; any recent figure will do.
    text_per_row: Vec<AtomicUsize>,
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Float,
    Bool,
    /// Days since 1970, from `YYYY-MM-DD` text.
    Date,
    /// Microseconds since 1970, from RFC 3339-like text; a time without an offset is in
    /// the column's zone (UTC without one), as arrow-json reads it.
    Timestamp(Option<Tz>),
}

/// Stops the decoding of a chunk: the fast path does not apply to it.
type Decoded<T> = Option<T>;

impl FlatJson {
    /// `None` when a field has a type this decoder does not read, or a name that would be
    /// escaped in JSON (keys are compared as they stand); the file then goes through
    /// arrow-json only.
    /// `strict`: a record with a key the schema lacks makes the chunk go back to arrow-json,
    /// which refuses that record as the source's `new_fields` setting asks.
    pub(crate) fn new(schema: &SchemaRef, strict: bool) -> Option<Self> {
        let plain = |name: &str| !name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
        if !schema.fields().iter().all(|f| plain(f.name())) {
            return None;
        }
        let kinds = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => Some(Kind::Text),
                DataType::Int64 => Some(Kind::Int),
                DataType::Float64 => Some(Kind::Float),
                DataType::Boolean => Some(Kind::Bool),
                DataType::Date32 => Some(Kind::Date),
                DataType::Timestamp(TimeUnit::Microsecond, None) => Some(Kind::Timestamp(None)),
                DataType::Timestamp(TimeUnit::Microsecond, Some(zone)) => {
                    Some(Kind::Timestamp(Some(zone.parse().ok()?)))
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let names: Vec<Box<[u8]>> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_bytes().into())
            .collect();
        let index = names.iter().cloned().zip(0..).collect();
        let text_per_row = kinds.iter().map(|_| AtomicUsize::new(0)).collect();
        Some(Self {
            schema: schema.clone(),
            names,
            kinds,
            index,
            strict,
            text_per_row,
        })
    }

    /// Decodes `rows` newline-separated records, or `None` when the chunk is not one this
    /// decoder reads exactly as arrow-json would.
    pub(crate) fn decode(&self, text: &[u8], rows: usize) -> Option<RecordBatch> {
        // Valid as a whole, so every piece cut out of it at a quote is valid too, and the
        // columns need no check of their own (see `Column::finish`).
        simdutf8::basic::from_utf8(text).ok()?;
        let even_share = text.len() / rows.max(1) / self.kinds.len().max(1);
        let mut columns: Vec<Column> = self
            .kinds
            .iter()
            .zip(&self.text_per_row)
            .map(|(&kind, last)| {
                let per_row = match last.load(Ordering::Relaxed) {
                    0 => even_share,
                    // A little over the last chunk's, so a chunk of somewhat longer values
                    // still fits.
                    seen => seen + seen / 8,
                };
                // No column holds more than the chunk: a chunk of a few long records
                // followed by one of many short ones asks for no more than that.
                Column::new(kind, rows, per_row.saturating_mul(rows).min(text.len()))
            })
            .collect();
        // Where text values that are dates or timestamps are unescaped to be parsed.
        let mut scratch = Vec::new();
        // The row that last set each column: a key twice in a record is left to arrow-json.
        let mut set_in = vec![usize::MAX; columns.len()];
        // The column whose key came next after each column's (slot c + 1; slot 0: the first
        // key, the last slot: after a key the schema lacks) when last seen: records of one
        // file nearly always list their keys in the same order, so a key is usually one
        // comparison away, and a record lacking a key costs one lookup, not one a key after.
        let mut next: Vec<Option<usize>> = vec![None; columns.len() + 2];
        let unknown = columns.len() + 1;
        let mut p = Parser { text, pos: 0 };
        let mut row = 0;
        loop {
            p.skip_whitespace();
            if p.pos == text.len() {
                break;
            }
            if row == rows {
                return None;
            }
            p.expect(b'{')?;
            p.skip_spaces();
            if p.peek() == Some(b'}') {
                p.pos += 1;
            } else {
                let mut after = 0;
                loop {
                    p.expect(b'"')?;
                    let column = match next[after] {
                        Some(c) if p.key_is(&self.names[c]) => Some(c),
                        _ => {
                            let c = self.index.get(p.key()?).copied();
                            next[after] = c;
                            c
                        }
                    };
                    after = column.map_or(unknown, |c| c + 1);
                    p.skip_spaces();
                    p.expect(b':')?;
                    p.skip_spaces();
                    match column {
                        Some(c) => {
                            if std::mem::replace(&mut set_in[c], row) == row {
                                return None;
                            }
                            p.value(&mut columns[c], &mut scratch)?;
                        }
                        None if self.strict => return None,
                        None => p.skip_scalar()?,
                    }
                    p.skip_spaces();
                    match p.next()? {
                        b',' => p.skip_spaces(),
                        b'}' => break,
                        _ => return None,
                    }
                }
            }
            // One record a line, nothing after it.
            p.skip_spaces();
            match p.peek() {
                Some(b'\n') | None => {}
                Some(_) => return None,
            }
            for (c, column) in columns.iter_mut().enumerate() {
                if set_in[c] != row {
                    column.push_null();
                }
            }
            row += 1;
        }
        if row != rows {
            return None;
        }
        for (column, last) in columns.iter().zip(&self.text_per_row) {
            if let Values::Text { bytes, .. } = &column.values {
                last.store(bytes.len().div_ceil(rows.max(1)), Ordering::Relaxed);
            }
        }
        let arrays = columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(column, field)| column.finish(field.data_type()))
            .collect();
        RecordBatch::try_new(self.schema.clone(), arrays).ok()
    }
}

/// One column being filled, with its validity.
struct Column {
    values: Values,
    nulls: NullBufferBuilder,
}

enum Values {
    Text { offsets: Vec<i32>, bytes: Vec<u8> },
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(BooleanBufferBuilder),
    Date(Vec<i32>),
    Timestamp(Vec<i64>, Option<Tz>),
}

impl Column {
    fn new(kind: Kind, rows: usize, bytes: usize) -> Self {
        let values = match kind {
            Kind::Text => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                Values::Text {
                    offsets,
                    bytes: Vec::with_capacity(bytes),
                }
            }
            Kind::Int => Values::Int(Vec::with_capacity(rows)),
            Kind::Float => Values::Float(Vec::with_capacity(rows)),
            Kind::Bool => Values::Bool(BooleanBufferBuilder::new(rows)),
            Kind::Date => Values::Date(Vec::with_capacity(rows)),
            Kind::Timestamp(zone) => Values::Timestamp(Vec::with_capacity(rows), zone),
        };
        Self {
            values,
            nulls: NullBufferBuilder::new(rows),
        }
    }

    fn push_null(&mut self) {
        match &mut self.values {
            Values::Text { offsets, bytes } => offsets.push(bytes.len() as i32),
            Values::Int(v) => v.push(0),
            Values::Float(v) => v.push(0.0),
            Values::Bool(v) => v.append(false),
            Values::Date(v) => v.push(0),
            Values::Timestamp(v, _) => v.push(0),
        }
        self.nulls.append_null();
    }

    /// The column as an array of `data_type`, the schema's type for it.
    fn finish(mut self, data_type: &DataType) -> ArrayRef {
        let nulls = self.nulls.finish();
        match self.values {
            Values::Text { offsets, bytes } => {
                // SAFETY: the offsets start at 0 and only ever grow to the length of `bytes`
                // (checked against i32 as they were pushed), and each value is either a piece
                // of the chunk between two ASCII delimiters — the chunk was checked to be
                // UTF-8 before decoding, so the pieces are whole characters — or a character
                // encoded by `char::encode_utf8`. That is `new_unchecked`'s contract.
                Arc::new(unsafe {
                    StringArray::new_unchecked(
                        OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
                        Buffer::from_vec(bytes),
                        nulls,
                    )
                })
            }
            Values::Int(v) => Arc::new(Int64Array::new(ScalarBuffer::from(v), nulls)),
            Values::Float(v) => Arc::new(Float64Array::new(ScalarBuffer::from(v), nulls)),
            Values::Bool(mut v) => Arc::new(BooleanArray::new(v.finish(), nulls)),
            Values::Date(v) => Arc::new(Date32Array::new(ScalarBuffer::from(v), nulls)),
            Values::Timestamp(v, _) => Arc::new(
                TimestampMicrosecondArray::new(ScalarBuffer::from(v), nulls)
                    .with_data_type(data_type.clone()),
            ),
        }
    }
}

/// Where the next quote, backslash or newline is: what ends the plain run of a string.
/// Most keys and values are short: their first bytes are looked at eight at a time in a
/// word, which finds their end sooner than setting up a vector search does (and in a third
/// of the instructions a byte loop takes); long ones (descriptions) go on in memchr.
fn special(text: &[u8]) -> Option<usize> {
    const SHORT: usize = 32;
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `word` that equals `byte`; below the lowest such byte
    // no bit is ever set, so the lowest bit set is exact.
    let equal = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut at = 0;
    while at < SHORT.min(text.len() & !7) {
        let word = u64::from_le_bytes(text[at..at + 8].try_into().expect("eight bytes"));
        let found = equal(word, b'"') | equal(word, b'\\') | equal(word, b'\n');
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    if at < SHORT {
        let is_special = |b: &u8| matches!(b, b'"' | b'\\' | b'\n');
        return text[at..].iter().position(is_special).map(|i| at + i);
    }
    memchr::memchr3(b'"', b'\\', b'\n', &text[at..]).map(|i| i + at)
}

/// Whether two slices of one length hold the same bytes. Field names are short: two
/// overlapping words compare them without the call to `memcmp` that `==` makes, which took
/// as many instructions as the rest of matching a key.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn next(&mut self) -> Decoded<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Decoded<()> {
        (self.next()? == b).then_some(())
    }

    /// Between records.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.pos += 1;
        }
    }

    /// Within a record, which never goes on to the next line.
    fn skip_spaces(&mut self) {
        while let Some(b' ' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Whether the key after the opening quote is `name`; if so, it is taken.
    fn key_is(&mut self, name: &[u8]) -> bool {
        let end = self.pos + name.len();
        let same = self
            .text
            .get(self.pos..end)
            .is_some_and(|key| same_bytes(key, name))
            && self.text.get(end) == Some(&b'"');
        if same {
            self.pos = end + 1;
        }
        same
    }

    /// A key after its opening quote; keys with escapes are left to arrow-json.
    fn key(&mut self) -> Decoded<&'a [u8]> {
        let rest = &self.text[self.pos..];
        let end = special(rest)?;
        if rest[end] != b'"' {
            return None;
        }
        self.pos += end + 1;
        Some(&rest[..end])
    }

    fn literal(&mut self, word: &[u8]) -> Decoded<()> {
        let end = self.pos + word.len();
        (self.text.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// A value into `column`; `scratch` holds a date's or timestamp's text while it is parsed.
    fn value(&mut self, column: &mut Column, scratch: &mut Vec<u8>) -> Decoded<()> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            column.push_null();
            return Some(());
        }
        match &mut column.values {
            Values::Text { offsets, bytes } => {
                self.expect(b'"')?;
                self.string(bytes)?;
                offsets.push(i32::try_from(bytes.len()).ok()?);
            }
            Values::Int(v) => {
                let number = self.number()?;
                // Decimals and exponents into a whole-number column: arrow-json's rules.
                if number.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                    return None;
                }
                v.push(number.parse().ok()?);
            }
            Values::Float(v) => {
                v.push(self.number()?.parse().ok()?);
            }
            Values::Bool(v) => match self.peek()? {
                b't' => {
                    self.literal(b"true")?;
                    v.append(true);
                }
                b'f' => {
                    self.literal(b"false")?;
                    v.append(false);
                }
                _ => return None,
            },
            // Dates and timestamps are parsed by arrow-json's own parsers, so they read
            // exactly as there; numbers and text that does not parse are left to it.
            Values::Date(v) => {
                let text = self.text_value(scratch)?;
                v.push(plain_date(text.as_bytes()).or_else(|| Date32Type::parse(text))?);
            }
            Values::Timestamp(v, zone) => {
                let text = self.text_value(scratch)?;
                let micros = match plain_utc_micros(text.as_bytes()) {
                    Some(micros) => micros,
                    None => match zone {
                        Some(zone) => micros(zone, text)?,
                        None => micros(&Utc, text)?,
                    },
                };
                v.push(micros);
            }
        }
        column.nulls.append_non_null();
        Some(())
    }

    /// A JSON string's text, unescaped into `scratch` when it has escapes.
    fn text_value<'s>(&mut self, scratch: &'s mut Vec<u8>) -> Decoded<&'s str> {
        self.expect(b'"')?;
        scratch.clear();
        self.string(scratch)?;
        // SAFETY: `string` writes pieces of the chunk cut at ASCII delimiters and characters
        // encoded by `char::encode_utf8`; the chunk was checked to be UTF-8 before decoding
        // (see `Column::finish`).
        Some(unsafe { std::str::from_utf8_unchecked(scratch) })
    }

    /// A JSON number, checked against the grammar: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Decoded<&'a str> {
        let start = self.pos;
        let digits = |p: &mut Self| -> Decoded<usize> {
            let from = p.pos;
            while let Some(b'0'..=b'9') = p.peek() {
                p.pos += 1;
            }
            (p.pos > from).then_some(p.pos - from)
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let first = self.peek()?;
        let whole = digits(self)?;
        if first == b'0' && whole > 1 {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            digits(self)?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            digits(self)?;
        }
        let number = &self.text[start..self.pos];
        // SAFETY: the grammar above took only ASCII: digits, signs, points and `e`/`E`.
        Some(unsafe { std::str::from_utf8_unchecked(number) })
    }

    /// A string after its opening quote, unescaped onto `out`.
    fn string(&mut self, out: &mut Vec<u8>) -> Decoded<()> {
        loop {
            let rest = &self.text[self.pos..];
            let end = special(rest)?;
            out.extend_from_slice(&rest[..end]);
            self.pos += end + 1;
            match rest[end] {
                b'"' => return Some(()),
                b'\n' => return None,
                _ => {}
            }
            let unescaped = match self.next()? {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 8,
                b'f' => 12,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => {
                    let c = self.unicode_escape()?;
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    continue;
                }
                _ => return None,
            };
            out.push(unescaped);
        }
    }

    /// `\uXXXX` after the `u`, with the second half of a surrogate pair when there is one.
    fn unicode_escape(&mut self) -> Decoded<char> {
        let high = self.hex4()?;
        if !(0xD800..0xDC00).contains(&high) {
            return char::from_u32(high);
        }
        self.literal(b"\\u")?;
        let low = self.hex4()?;
        if !(0xDC00..0xE000).contains(&low) {
            return None;
        }
        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    }

    fn hex4(&mut self) -> Decoded<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        digits
            .iter()
            .try_fold(0, |n, &d| Some(n * 16 + char::from(d).to_digit(16)?))
    }

    /// The value of a key the schema does not have: arrow-json ignores it. Nested values
    /// are left to arrow-json.
    fn skip_scalar(&mut self) -> Decoded<()> {
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                self.string(&mut Vec::new())?;
            }
            b'n' => self.literal(b"null")?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            _ => {
                self.number()?;
            }
        }
        Some(())
    }
}

/// Days since 1970 of a date written exactly `YYYY-MM-DD`, the way nearly every export
/// writes one; `None` for anything else, which arrow's parser then reads (a tenth of the
/// instructions it takes for the common form).
fn plain_date(text: &[u8]) -> Option<i32> {
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = *text else {
        return None;
    };
    let year = digits(&[y0, y1, y2, y3])?;
    let (month, day) = (digits(&[m0, m1])?, digits(&[d0, d1])?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) {
        return None;
    }
    // Days from the civil calendar, counting years from March so the leap day comes last.
    let y = i64::from(year) - i64::from(month <= 2);
    let (era, year_of_era) = (y.div_euclid(400), y.rem_euclid(400));
    let day_of_year = (153 * i64::from((month + 9) % 12) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    i32::try_from(era * 146_097 + day_of_era - 719_468).ok()
}

/// Microseconds since 1970 of a UTC time written exactly `YYYY-MM-DDTHH:MM:SS[.fraction]Z`
/// (`T` also `t` or a space, `Z` also `z`, up to nine digits of fraction), the form services
/// export; `None` for anything else (offsets, leap seconds, no zone), which arrow's parser
/// then reads. A time in UTC is the same instant whatever the column's zone.
fn plain_utc_micros(text: &[u8]) -> Option<i64> {
    if text.len() < 20 || !matches!(text[10], b'T' | b't' | b' ') {
        return None;
    }
    let (Some(b'Z' | b'z'), [date @ .., _]) = (text.last(), text) else {
        return None;
    };
    let days = plain_date(&date[..10])?;
    let [h0, h1, b':', m0, m1, b':', s0, s1] = date[11..19] else {
        return None;
    };
    let (hour, minute, second) = (digits(&[h0, h1])?, digits(&[m0, m1])?, digits(&[s0, s1])?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let micros = match &date[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            let nanos = digits(fraction)? * 10u32.pow(9 - fraction.len() as u32);
            nanos / 1000
        }
        _ => return None,
    };
    let seconds = i64::from(days) * 86_400
        + i64::from(hour) * 3_600
        + i64::from(minute) * 60
        + i64::from(second);
    Some(seconds * 1_000_000 + i64::from(micros))
}

/// The number ASCII digits write; `None` if one is not a digit.
fn digits(text: &[u8]) -> Option<u32> {
    text.iter().try_fold(0u32, |n, &b| {
        let d = b.wrapping_sub(b'0');
        (d < 10).then(|| n * 10 + u32::from(d))
    })
}

/// `text` as microseconds since 1970, read as arrow-json reads a timestamp in `zone`.
fn micros<Z: TimeZone>(zone: &Z, text: &str) -> Option<i64> {
    Some(string_to_datetime(zone, text).ok()?.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn the_end_of_a_plain_run_is_found_at_every_length_and_place() {
        let naive = |t: &[u8]| t.iter().position(|b| matches!(b, b'"' | b'\\' | b'\n'));
        for len in 0..80 {
            // Bytes around the special ones: ASCII, the high bytes of UTF-8, one below and
            // one above each special byte.
            let plain: Vec<u8> = (0..len)
                .map(|i| [b'a', 0xC3, 0xA9, b'!', b'#', b'[', b']', 0x0B][i % 8])
                .collect();
            assert_eq!(special(&plain), None, "{len}");
            for at in 0..len {
                for byte in [b'"', b'\\', b'\n'] {
                    let mut text = plain.clone();
                    text[at] = byte;
                    if at + 3 < len {
                        text[at + 3] = b'"';
                    }
                    assert_eq!(special(&text), naive(&text), "{len} {at} {byte}");
                    assert_eq!(special(&text), Some(at));
                }
            }
        }
    }

    #[test]
    fn same_bytes_tells_every_difference_at_every_length() {
        for n in 0..40 {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same_bytes(&a, &a.clone()), "{n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a, &b), "{n} {at}");
            }
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("Id", DataType::Utf8, true),
            Field::new("Amount", DataType::Float64, true),
            Field::new("Probability", DataType::Int64, true),
            Field::new("IsDeleted", DataType::Boolean, true),
        ]))
    }

    /// What arrow-json makes of the same lines, with the file reader's settings.
    fn arrow_json(schema: &SchemaRef, text: &str, rows: usize) -> Option<RecordBatch> {
        let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
            .with_batch_size(rows.max(1))
            .with_coerce_primitive(true)
            .build_decoder()
            .unwrap();
        decoder.decode(text.as_bytes()).ok()?;
        decoder.flush().ok()?
    }

    fn lines(records: &[&str]) -> (String, usize) {
        let mut text = records.join("\n");
        text.push('\n');
        (text, records.len())
    }

    #[test]
    fn decodes_as_arrow_json_does() {
        let cases: &[&[&str]] = &[
            &[
                r#"{"Id":"006A","Amount":1250.5,"Probability":40,"IsDeleted":false}"#,
                r#"{"Probability":-7,"Id":"006B","IsDeleted":true,"Amount":3}"#,
                r#"{"Id":null,"Amount":null}"#,
                r#"{}"#,
                r#"{ "Id" : "caf\u00e9 \"quoted\" \\ \/ \n\t" , "Amount" : 1.5e3 }"#,
                r#"{"Id":"\ud83d\ude00 raw ü and 東京","Extra":"ignored","More":12.5e-1,"Flag":null}"#,
                r#"{"Amount":-0.0,"Probability":0,"Id":""}"#,
                r#"{"Amount":12345678901234567890,"Id":"big"}   "#,
            ],
            &[r#"{"Id":"same order"}"#, r#"{"Id":"again","Amount":2}"#],
        ];
        let schema = schema();
        let flat = FlatJson::new(&schema, false).unwrap();
        for records in cases {
            let (text, rows) = lines(records);
            let ours = flat.decode(text.as_bytes(), rows).expect("decoded");
            assert_eq!(Some(ours), arrow_json(&schema, &text, rows), "{text}");
        }
    }

    #[test]
    fn leaves_what_it_cannot_match_to_arrow_json() {
        let schema = schema();
        let flat = FlatJson::new(&schema, false).unwrap();
        for record in [
            r#"{"Id":12}"#,                            // a number where text belongs: coerced
            r#"{"Probability":"40"}"#,                 // text where a number belongs: parsed
            r#"{"Probability":12.5}"#,                 // a decimal in a whole-number column
            r#"{"Probability":1e2}"#,                  // an exponent in a whole-number column
            r#"{"Id":"a","Id":"b"}"#,                  // a key twice
            r#"{"Nested":{"a":1}}"#,                   // a nested value
            r#"{"List":[1]}"#,                         // a list
            r#"{"Id":"a"} {"Id":"b"}"#,                // two records on a line
            r#"{"Id":"a",}"#,                          // a trailing comma
            r#"{"Id":"a""#,                            // cut short
            r#"["a"]"#,                                // not an object
            r#"{"Amount":01}"#,                        // not a JSON number
            r#"{"Amount":1.}"#,                        // not a JSON number
            r#"{"Amount":NaN}"#,                       // not a JSON number
            r#"{"IsDeleted":"true"}"#,                 // text where true/false belongs
            r#"{"Id":"\ud800"}"#,                      // half a surrogate pair
            r#"{"Id":"\x"}"#,                          // not an escape
            r#"{"Probability":99999999999999999999}"#, // too big for 64 bits
            r#"{"I\u0064":"escaped key"}"#,            // a key with an escape
        ] {
            let (text, rows) = lines(&[record]);
            assert!(flat.decode(text.as_bytes(), rows).is_none(), "{record}");
        }
    }

    #[test]
    fn a_record_over_two_lines_is_not_two_records() {
        let flat = FlatJson::new(&schema(), false).unwrap();
        let text = "{\"Id\":\"a\",\n\"Amount\":1}\n{\"Id\":\"b\"}\n";
        assert!(flat.decode(text.as_bytes(), 3).is_none());
        assert!(flat.decode(text.as_bytes(), 2).is_none());
    }

    #[test]
    fn text_that_is_not_utf8_is_left_to_arrow_json() {
        let flat = FlatJson::new(&schema(), false).unwrap();
        assert!(flat.decode(b"{\"Id\":\"\xff\"}\n", 1).is_none());
    }

    #[test]
    fn field_names_that_json_escapes_are_not_taken() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "say \"hi\"",
            DataType::Utf8,
            true,
        )]));
        assert!(FlatJson::new(&schema, false).is_none());
    }

    #[test]
    fn other_column_types_are_not_taken() {
        for data_type in [
            DataType::Decimal128(38, 9),
            DataType::Timestamp(TimeUnit::Millisecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("Not/A_Zone".into())),
        ] {
            let schema = Arc::new(Schema::new(vec![Field::new("x", data_type, true)]));
            assert!(FlatJson::new(&schema, false).is_none());
        }
    }

    fn dated() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("CloseDate", DataType::Date32, true),
            Field::new(
                "LastModifiedDate",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            Field::new(
                "Local",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+05:30".into())),
                true,
            ),
            Field::new(
                "Naive",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
        ]))
    }

    #[test]
    fn dates_and_timestamps_decode_as_arrow_json_does() {
        let records = [
            r#"{"CloseDate":"2026-09-02","LastModifiedDate":"2026-06-14T09:34:05.490687Z","Local":"2026-06-14T09:34:05Z","Naive":"2026-06-14T09:34:05.490687Z"}"#,
            r#"{"CloseDate":"1969-12-31","LastModifiedDate":"2024-02-29T23:59:59+02:00","Local":"2024-02-29 23:59:59","Naive":"2024-02-29T23:59:59"}"#,
            r#"{"CloseDate":null,"LastModifiedDate":"2026-01-01t00:00:00.1234567891z","Local":"2026-01-01","Naive":"2026-01-01T10:00:00-0700"}"#,
            r#"{"CloseDate":"2026-1-2","LastModifiedDate":"2026\u002d03\u002d04T05:06:07Z","Local":null}"#,
            r#"{"CloseDate":" 2026-09-02 ","LastModifiedDate":"1900-01-01T00:00:00.000001Z","Naive":"0001-01-01T00:00:00Z"}"#,
            r#"{}"#,
        ];
        let schema = dated();
        let flat = FlatJson::new(&schema, false).unwrap();
        let (text, rows) = lines(&records);
        let ours = flat.decode(text.as_bytes(), rows).expect("decoded");
        assert_eq!(Some(ours), arrow_json(&schema, &text, rows), "{text}");
        // The same schema over several chunks, with the buffer sizes learned as it goes.
        for _ in 0..3 {
            let (text, rows) = lines(&records[..2]);
            let ours = flat.decode(text.as_bytes(), rows).expect("decoded");
            assert_eq!(Some(ours), arrow_json(&schema, &text, rows));
        }
    }

    #[test]
    fn plain_dates_and_times_read_as_arrow_reads_them() {
        let arrow_micros = |t: &str| micros(&Utc, t);
        // Every day of four centuries' worth of years around the edges of the calendar,
        // and days that do not exist.
        for year in (0..=2)
            .chain(1899..=1901)
            .chain(1968..=2101)
            .chain(9998..=9999)
        {
            for month in 0..=13 {
                for day in 0..=32 {
                    let text = format!("{year:04}-{month:02}-{day:02}");
                    let ours = plain_date(text.as_bytes());
                    assert_eq!(
                        ours,
                        Date32Type::parse(&text).filter(|_| ours.is_some()),
                        "{text}"
                    );
                    if (1..=12).contains(&month) && (1..=28).contains(&day) {
                        assert!(ours.is_some(), "{text}");
                    }
                    if ours.is_none() {
                        assert_eq!(Date32Type::parse(&text), None, "{text}");
                    }
                }
            }
        }
        for text in [
            "2026-06-14T09:34:05.490687Z",
            "2026-06-14t09:34:05z",
            "2026-06-14 23:59:59.9Z",
            "2024-02-29T00:00:00.000000001Z",
            "2024-02-29T00:00:00.123456789Z",
            "1969-12-31T23:59:59.999999Z",
            "1900-01-01T00:00:00Z",
            "0001-01-01T00:00:00.5Z",
            "9999-12-31T23:59:59.999999999Z",
        ] {
            assert_eq!(
                plain_utc_micros(text.as_bytes()),
                arrow_micros(text),
                "{text}"
            );
            assert!(plain_utc_micros(text.as_bytes()).is_some(), "{text}");
        }
        for second in 0..=59 {
            for fraction in ["", ".0", ".25", ".123456", ".1234567"] {
                let text = format!("2025-03-30T01:59:{second:02}{fraction}Z");
                assert_eq!(
                    plain_utc_micros(text.as_bytes()),
                    arrow_micros(&text),
                    "{text}"
                );
            }
        }
        // Left to arrow: other forms, and what is not a time.
        for text in [
            "2026-06-14T09:34:05+02:00",
            "2026-06-14T09:34:05",
            "2026-06-14",
            "2026-06-14T09:34:60Z",
            "2026-06-14T24:00:00Z",
            "2026-06-14T09:34:05.Z",
            "2026-06-14T09:34:05.1234567891Z",
            "2026-02-30T00:00:00Z",
            "2026-06-14X09:34:05Z",
            "+2026-06-14T09:34:05Z",
        ] {
            assert_eq!(plain_utc_micros(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn dates_and_timestamps_it_cannot_read_are_left_to_arrow_json() {
        let flat = FlatJson::new(&dated(), false).unwrap();
        for record in [
            r#"{"CloseDate":20260902}"#, // a number where a date belongs
            r#"{"LastModifiedDate":1767225600000000}"#, // a number where a timestamp belongs
            r#"{"CloseDate":"next Tuesday"}"#, // not a date
            r#"{"CloseDate":"2026-02-30"}"#, // no such day
            r#"{"LastModifiedDate":"2026-06-14T25:00:00Z"}"#, // no such hour
            r#"{"LastModifiedDate":"2026-06-14T09:34:05 Mars"}"#, // no such zone
            r#"{"LastModifiedDate":true}"#, // not text
        ] {
            let (text, rows) = lines(&[record]);
            assert!(flat.decode(text.as_bytes(), rows).is_none(), "{record}");
        }
    }

    #[test]
    fn text_columns_of_any_length_decode_whatever_the_last_chunk_held() {
        let flat = FlatJson::new(&schema(), false).unwrap();
        for id in ["a", &"long ".repeat(400), "", &"é".repeat(1000), "b"] {
            let record = format!(r#"{{"Id":"{id}","Amount":1}}"#);
            let (text, rows) = lines(&[&record, &record, r#"{"Id":null}"#]);
            let ours = flat.decode(text.as_bytes(), rows).expect("decoded");
            assert_eq!(Some(ours), arrow_json(&schema(), &text, rows));
        }
    }
}
