//! Durations ("500ms", "2s", "1m30s", "1.5h", "1d") and sizes ("512KiB", "10MiB", "1GiB"):
//! parsing, and every way they are written for people.
//!
//! Written in the table's own syntax ([`format_duration`], [`format_size`]: the text parses
//! back to the same value), or rounded for reading: [`format_elapsed`] (log lines),
//! [`format_age`] (the `status` table), [`format_size_approx`], [`format_size_and_bytes`],
//! [`format_mib`] and [`format_mib_compact`].
//!
//! Both parsers are strict: no spaces, no signs, a unit is required (except for the
//! duration `"0"` and a plain byte count), and values that do not fit are rejected rather
//! than clamped. Errors are [`UnitError`]s whose text is a message fragment such as
//! `invalid duration "30" (use a unit: "30s", "5m", "500ms")`; the table parser prefixes
//! it with the field path.

use std::time::Duration;

/// The longest duration any key of the table (and any flag or credentials field)
/// accepts: 3650 days (ten years). Every deadline the supervisor computes from a table
/// value stays far inside what the monotonic clock can represent.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

const NANOS_PER_MS: u128 = 1_000_000;
const NANOS_PER_S: u128 = 1_000_000_000;

/// Duration units, largest first: (suffix, nanoseconds).
const DURATION_UNITS: [(&str, u128); 5] = [
    ("d", 86_400 * NANOS_PER_S),
    ("h", 3_600 * NANOS_PER_S),
    ("m", 60 * NANOS_PER_S),
    ("s", NANOS_PER_S),
    ("ms", NANOS_PER_MS),
];

/// Size units: (suffix, bytes). `K`/`M`/`G`/`T` are binary, like `KiB`…; `KB`… are decimal.
const SIZE_UNITS: [(&str, u128); 14] = [
    ("B", 1),
    ("K", 1 << 10),
    ("KiB", 1 << 10),
    ("KB", 1_000),
    ("kB", 1_000),
    ("M", 1 << 20),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("G", 1 << 30),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("T", 1 << 40),
    ("TiB", 1 << 40),
    ("TB", 1_000_000_000_000),
];

/// Fraction digits beyond this many cannot change the result by a whole nanosecond/byte
/// for any unit we accept (the largest unit is under 10^14 ns / 2^40 bytes).
const MAX_FRACTION_DIGITS: usize = 18;

/// A decimal number split from its unit: `"1.5"` + `"GiB"`.
struct Number<'a> {
    int: &'a str,
    frac: &'a str,
}

impl Number<'_> {
    /// `self × unit`, rounded down; `None` on overflow of u128.
    fn times(&self, unit: u128) -> Option<u128> {
        let mut total: u128 = 0;
        for c in self.int.bytes() {
            total = total.checked_mul(10)?.checked_add(u128::from(c - b'0'))?;
        }
        let mut total = total.checked_mul(unit)?;
        let frac = &self.frac[..self.frac.len().min(MAX_FRACTION_DIGITS)];
        if !frac.is_empty() {
            let mut digits: u128 = 0;
            for c in frac.bytes() {
                digits = digits * 10 + u128::from(c - b'0');
            }
            let scale = 10u128.pow(frac.len() as u32);
            // digits < 10^18 and unit < 2^50, so the product fits easily.
            total = total.checked_add(digits.checked_mul(unit)? / scale)?;
        }
        Some(total)
    }

    fn has_fraction(&self) -> bool {
        self.frac.bytes().any(|c| c != b'0')
    }
}

/// Split a leading `digits[.digits]` off `s`. `None` if `s` does not start with a digit, the
/// fraction has no digits ("1.", ".5") or a second dot follows ("1.2.3").
fn take_number(s: &str) -> Option<(Number<'_>, &str)> {
    let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
    if int_len == 0 {
        return None;
    }
    let (int, rest) = s.split_at(int_len);
    match rest.strip_prefix('.') {
        Some(after_dot) => {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            if frac_len == 0 {
                return None;
            }
            let (frac, rest) = after_dot.split_at(frac_len);
            (!rest.starts_with('.')).then_some((Number { int, frac }, rest))
        }
        None => Some((Number { int, frac: "" }, rest)),
    }
}

/// The unit letters at the start of `s` (up to the next digit).
fn take_unit(s: &str) -> (&str, &str) {
    let len = s
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit() || *c == '.')
        .map_or(s.len(), |(i, _)| i);
    s.split_at(len)
}

/// What a [`UnitError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Duration,
    Size,
}

impl Quantity {
    /// Valid values to show when a text is not one.
    fn examples(self) -> &'static str {
        match self {
            Quantity::Duration => "\"500ms\", \"30s\", \"5m\", \"1h\", \"1d\" or \"1m30s\"",
            Quantity::Size => "\"512KiB\", \"10MiB\", \"1GiB\" or \"100MB\"",
        }
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quantity::Duration => "duration",
            Quantity::Size => "size",
        })
    }
}

/// Why a duration or size (of the table, a flag or a credentials file) was refused. The
/// text is a fragment: the table parser prefixes it with the field path, clap with the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Empty, not a number, or a number in a form we do not take (`"+5s"`, `".5s"`).
    #[error("invalid {what} {text:?} (expected e.g. {})", .what.examples())]
    Malformed { what: Quantity, text: String },
    #[error("invalid {what} {text:?} (must not be negative)")]
    Negative { what: Quantity, text: String },
    #[error("invalid {what} {text:?} (remove the spaces: {:?})", without_spaces(.text))]
    Spaces { what: Quantity, text: String },
    #[error("invalid {what} {text:?} (too large)")]
    TooLarge { what: Quantity, text: String },
    /// A lone number such as `"30"`.
    #[error("invalid duration {0:?} (use a unit: \"30s\", \"5m\", \"500ms\")")]
    NoUnit(String),
    /// A later part without a unit, as in `"1m30"`.
    #[error("invalid duration {0:?} (every number needs a unit: ms, s, m, h or d)")]
    PartWithoutUnit(String),
    #[error("invalid duration {text:?} (unknown unit {unit:?}; use ms, s, m, h or d)")]
    UnknownDurationUnit { text: String, unit: String },
    #[error(
        "invalid duration {0:?} (units must go from largest to smallest, each once, as in \"1h30m\")"
    )]
    UnitOrder(String),
    #[error(
        "invalid size {text:?} (unknown unit {unit:?}; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
    )]
    UnknownSizeUnit { text: String, unit: String },
    #[error("invalid size {0:?} (a byte count must be a whole number)")]
    FractionalBytes(String),
    /// A flag or credentials duration above [`MAX_DURATION`].
    #[error("{0:?} is too long: at most {max:?} (ten years)", max = format_duration(MAX_DURATION))]
    AboveMax(String),
    /// Zero where only a positive duration makes sense.
    #[error("{0:?} must be more than zero")]
    Zero(String),
    /// Outside the bounds of one flag: `rule` completes the sentence
    /// (`"must be between 1KiB and 64MiB"`).
    #[error("{text:?} {rule}")]
    OutOfBounds { text: String, rule: &'static str },
}

fn without_spaces(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// What no duration or size can be: empty, signed, or with white space in it.
fn check_form(s: &str, what: Quantity) -> Result<(), UnitError> {
    let text = s.to_string();
    if s.is_empty() {
        return Err(UnitError::Malformed { what, text });
    }
    if s.starts_with('-') {
        return Err(UnitError::Negative { what, text });
    }
    if s.chars().any(char::is_whitespace) {
        return Err(UnitError::Spaces { what, text });
    }
    Ok(())
}

/// Parse a duration: one or more `<number><unit>` parts, largest unit first, each unit at
/// most once: `"500ms"`, `"2s"`, `"1.5s"`, `"5m"`, `"1h"`, `"1d"`, `"1m30s"`. `"0"` is the
/// only duration without a unit.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    check_form(s, Quantity::Duration)?;
    if s.bytes().all(|c| c == b'0') {
        return Ok(Duration::ZERO);
    }
    let text = || s.to_string();
    let too_large = || UnitError::TooLarge {
        what: Quantity::Duration,
        text: text(),
    };

    let mut rest = s;
    let mut total: u128 = 0;
    // Index into DURATION_UNITS of the last unit used; the next must be smaller.
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let Some((number, after)) = take_number(rest) else {
            return Err(UnitError::Malformed {
                what: Quantity::Duration,
                text: text(),
            });
        };
        let (unit, after) = take_unit(after);
        if unit.is_empty() {
            if last_unit.is_none() && after.is_empty() {
                return Err(UnitError::NoUnit(text()));
            }
            return Err(UnitError::PartWithoutUnit(text()));
        }
        let Some(index) = DURATION_UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(UnitError::UnknownDurationUnit {
                text: text(),
                unit: unit.to_string(),
            });
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(UnitError::UnitOrder(text()));
        }
        last_unit = Some(index);
        let part = number
            .times(DURATION_UNITS[index].1)
            .ok_or_else(too_large)?;
        total = total.checked_add(part).ok_or_else(too_large)?;
        rest = after;
    }

    let secs = u64::try_from(total / NANOS_PER_S).map_err(|_| too_large())?;
    // The remainder is below 10^9, so it fits in u32.
    let nanos = (total % NANOS_PER_S) as u32;
    Ok(Duration::new(secs, nanos))
}

/// A duration for a command-line flag or a credentials file: at most
/// [`MAX_DURATION`], like every duration of the table, so no value
/// can overflow the clock arithmetic it ends up in.
pub fn parse_flag_duration(s: &str) -> Result<Duration, UnitError> {
    match parse_duration(s)? {
        d if d > MAX_DURATION => Err(UnitError::AboveMax(s.to_string())),
        d => Ok(d),
    }
}

/// A duration that must be more than zero (command-line flags such as `--poll 30s`), at
/// most ten years.
pub fn parse_positive_duration(s: &str) -> Result<Duration, UnitError> {
    match parse_flag_duration(s)? {
        d if d.is_zero() => Err(UnitError::Zero(s.to_string())),
        d => Ok(d),
    }
}

/// Parse a size in bytes: `"512"`, `"512B"`, `"10KiB"`, `"1.5GiB"`, `"100MB"`. Binary
/// units: `K`, `KiB`, `M`, `MiB`, `G`, `GiB`, `T`, `TiB`; decimal: `KB` (or `kB`), `MB`,
/// `GB`, `TB`. A fractional size is rounded down to whole bytes.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    check_form(s, Quantity::Size)?;
    let text = || s.to_string();
    let Some((number, unit)) = take_number(s) else {
        return Err(UnitError::Malformed {
            what: Quantity::Size,
            text: text(),
        });
    };
    let multiplier = if unit.is_empty() {
        1
    } else {
        match SIZE_UNITS.iter().find(|(u, _)| *u == unit) {
            Some((_, m)) => *m,
            None => {
                return Err(UnitError::UnknownSizeUnit {
                    text: text(),
                    unit: unit.to_string(),
                });
            }
        }
    };
    if multiplier == 1 && number.has_fraction() {
        return Err(UnitError::FractionalBytes(text()));
    }
    number
        .times(multiplier)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| UnitError::TooLarge {
            what: Quantity::Size,
            text: text(),
        })
}

/// Format a duration the way the table writes it: `"2s"`, `"1m30s"`, `"500ms"`, `"1h"`,
/// `"0s"`. Parts below a millisecond become a fraction of a millisecond (`"0.25ms"`), so
/// the result always parses back to the same duration.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = nanos;
    for (unit, size) in DURATION_UNITS {
        let count = rest / size;
        rest %= size;
        if unit == "ms" && rest > 0 {
            let frac = format!("{rest:06}");
            out.push_str(&format!("{count}.{}ms", frac.trim_end_matches('0')));
            rest = 0;
        } else if count > 0 {
            out.push_str(&format!("{count}{unit}"));
        }
    }
    out
}

/// Format a byte count with the largest binary unit that divides it: `"10MiB"`,
/// `"1536KiB"`, `"512B"`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes != 0 && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// `1 process`, `2 processes`, `0 restarts`: a count and its noun, singular for one.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `250ms`, `2.5s`, `12s`, `1m05s`, `26h01m40s`: how long something took or lasted, in
/// log lines. Milliseconds below a second; a tenth of a second below ten seconds unless
/// whole; then whole seconds, minutes and hours (rounded down).
pub fn format_elapsed(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    let (h, m, sec) = hms(s);
    if h > 0 {
        format!("{h}h{m:02}m{sec:02}s")
    } else if m > 0 {
        format!("{m}m{sec:02}s")
    } else if ms % 1000 == 0 || s >= 10 {
        format!("{s}s")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// `45s`, `12m03s`, `2h05m`, `3d04h`: an uptime or a time left in its two largest units,
/// rounded down (the `status` table). Negative counts as zero.
pub fn format_age(secs: f64) -> String {
    let (h, m, sec) = hms(secs.max(0.0) as u64);
    let (d, h) = (h / 24, h % 24);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// Whole hours, minutes of the hour, seconds of the minute.
fn hms(secs: u64) -> (u64, u64, u64) {
    (secs / 3600, (secs / 60) % 60, secs % 60)
}

/// `512 B`, `3.1 MiB`: a byte count to one decimal in the largest binary unit of which it
/// holds at least one (memory in the `status` table).
pub fn format_size_approx(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// `512 bytes`, `1.5 KiB (1536 bytes)`: [`format_size_approx`] with the exact count (the
/// size of a dropped file in its task note).
pub fn format_size_and_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    format!("{} ({bytes} bytes)", format_size_approx(bytes))
}

/// `3.1 MiB`: always in MiB, to one decimal, so a size and its limit read alike.
pub fn format_mib(bytes: u64) -> String {
    format!("{:.1} MiB", in_mib(bytes))
}

/// `3.1MiB`: [`format_mib`] without the space (the supervisor's health messages).
pub fn format_mib_compact(bytes: u64) -> String {
    format!("{:.1}MiB", in_mib(bytes))
}

fn in_mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Each text is refused with a message that contains its fragment.
    fn assert_rejected<T: std::fmt::Debug>(
        parse: fn(&str) -> Result<T, UnitError>,
        cases: &[(&str, &str)],
    ) {
        for (text, want) in cases {
            match parse(text) {
                Ok(v) => panic!("{text:?} parsed as {v:?}"),
                Err(e) => assert!(e.to_string().contains(want), "{text:?}: {e}"),
            }
        }
    }

    #[test]
    fn durations_accepted() {
        let cases = [
            ("0", Duration::ZERO),
            ("00", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("0ms", Duration::ZERO),
            ("500ms", ms(500)),
            ("2s", ms(2_000)),
            ("1.5s", ms(1_500)),
            ("0.5s", ms(500)),
            ("5m", ms(300_000)),
            ("1h", ms(3_600_000)),
            ("1d", ms(86_400_000)),
            ("1m30s", ms(90_000)),
            ("1h30m", ms(5_400_000)),
            ("1d2h3m4s5ms", ms(93_784_005)),
            ("1.5ms", Duration::from_micros(1_500)),
            ("90s", ms(90_000)),
            ("1.25h", ms(4_500_000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn long_fractions_are_truncated_not_rejected() {
        assert_eq!(
            parse_duration("0.1234567891234567891234s"),
            Ok(Duration::from_nanos(123_456_789))
        );
    }

    #[test]
    fn durations_rejected() {
        let cases = [
            ("", "invalid duration \"\" (expected e.g."),
            (
                "30",
                "invalid duration \"30\" (use a unit: \"30s\", \"5m\", \"500ms\")",
            ),
            ("1.5", "(use a unit"),
            ("-5s", "(must not be negative)"),
            ("-0", "(must not be negative)"),
            ("+5s", "(expected e.g."),
            ("5 s", "(remove the spaces: \"5s\")"),
            ("1m 30s", "(remove the spaces: \"1m30s\")"),
            ("5min", "(unknown unit \"min\"; use ms, s, m, h or d)"),
            ("5S", "(unknown unit \"S\""),
            ("5us", "(unknown unit \"us\""),
            ("s", "(expected e.g."),
            ("1.s", "(expected e.g."),
            (".5s", "(expected e.g."),
            ("1.2.3s", "(expected e.g."),
            ("30s1m", "(units must go from largest to smallest"),
            ("1m1m", "(units must go from largest to smallest"),
            ("1m30", "(every number needs a unit"),
            ("213503982334602d", "(too large)"),
            ("99999999999999999999999999999999999999999d", "(too large)"),
            ("18446744073709551616s", "(too large)"),
        ];
        assert_rejected(parse_duration, &cases);
    }

    #[test]
    fn largest_duration_fits() {
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Ok(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn sizes_accepted() {
        let cases = [
            ("0", 0),
            ("512", 512),
            ("512B", 512),
            ("1K", 1024),
            ("10KiB", 10 * 1024),
            ("10KB", 10_000),
            ("10kB", 10_000),
            ("10M", 10 << 20),
            ("10MiB", 10 << 20),
            ("10MB", 10_000_000),
            ("1G", 1 << 30),
            ("1GiB", 1 << 30),
            ("1GB", 1_000_000_000),
            ("1.5GiB", 3 << 29),
            ("0.5KiB", 512),
            ("0.1KiB", 102),
            ("2TiB", 2 << 40),
            ("1.0B", 1),
            ("18446744073709551615", u64::MAX),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn sizes_rejected() {
        let cases = [
            ("", "invalid size \"\" (expected e.g."),
            ("-1MiB", "(must not be negative)"),
            ("10 MiB", "(remove the spaces: \"10MiB\")"),
            ("10mb", "(unknown unit \"mb\""),
            ("10Mi", "(unknown unit \"Mi\""),
            ("MiB", "(expected e.g."),
            ("1.5", "(a byte count must be a whole number)"),
            ("1.5B", "(a byte count must be a whole number)"),
            ("1.2.3MiB", "(expected e.g."),
            ("18446744073709551616", "(too large)"),
            ("16777216TiB", "(too large)"),
            ("99999999999999999999999999999999999999999", "(too large)"),
        ];
        assert_rejected(parse_size, &cases);
    }

    #[test]
    fn format_durations() {
        let cases = [
            (Duration::ZERO, "0s"),
            (ms(500), "500ms"),
            (ms(2_000), "2s"),
            (ms(90_000), "1m30s"),
            (ms(3_600_000), "1h"),
            (ms(86_400_000 + 1), "1d1ms"),
            (ms(1_500), "1s500ms"),
            (Duration::from_micros(250), "0.25ms"),
            (Duration::from_nanos(1), "0.000001ms"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn format_then_parse_round_trips() {
        for nanos in [
            0,
            1,
            999,
            1_000_000,
            1_500_000_001,
            86_400_000_000_123,
            u64::MAX,
        ] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        let max = Duration::new(u64::MAX, 999_999_999);
        assert_eq!(parse_duration(&format_duration(max)), Ok(max));
    }

    #[test]
    fn format_sizes() {
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(512), "512B");
        assert_eq!(format_size(1024), "1KiB");
        assert_eq!(format_size(1536 * 1024), "1536KiB");
        assert_eq!(format_size(10 << 20), "10MiB");
        assert_eq!(format_size(1 << 40), "1TiB");
        for n in [0, 1, 1023, 1024, 10 << 20, u64::MAX] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
    }

    #[test]
    fn elapsed() {
        let cases = [
            (ms(0), "0ms"),
            (ms(250), "250ms"),
            (ms(999), "999ms"),
            (ms(1_000), "1s"),
            (ms(2_500), "2.5s"),
            (ms(9_950), "9.9s"),
            (ms(12_345), "12s"),
            (ms(65_000), "1m05s"),
            (ms(3_600_000), "1h00m00s"),
            (ms(93_700_000), "26h01m40s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_elapsed(d), want, "{d:?}");
        }
    }

    /// Formerly `status`'s own `human_duration` and `human_bytes`.
    #[test]
    fn ages_and_approximate_sizes() {
        assert_eq!(format_age(45.9), "45s");
        assert_eq!(format_age(723.0), "12m03s");
        assert_eq!(format_age(7500.0), "2h05m");
        assert_eq!(format_age(3.0 * 86_400.0 + 4.0 * 3600.0), "3d04h");
        assert_eq!(format_age(-1.0), "0s");
        assert_eq!(format_size_approx(512), "512 B");
        assert_eq!(format_size_approx(3_250_000), "3.1 MiB");
    }

    /// Formerly the filesystem watcher's own `human_size`.
    #[test]
    fn sizes_with_bytes() {
        assert_eq!(format_size_and_bytes(0), "0 bytes");
        assert_eq!(format_size_and_bytes(1023), "1023 bytes");
        assert_eq!(format_size_and_bytes(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(format_size_and_bytes(3 << 30), "3.0 GiB (3221225472 bytes)");
    }

    #[test]
    fn mebibytes() {
        assert_eq!(format_mib(25 << 20), "25.0 MiB");
        assert_eq!(format_mib(3_250_000), "3.1 MiB");
        assert_eq!(format_mib_compact(4096), "0.0MiB");
        assert_eq!(format_mib_compact(12_900_000), "12.3MiB");
    }
}
