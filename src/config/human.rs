//! Human-readable sizes (`"25MiB"`), durations (`"5m"`, `"5d"`), rates (`"600/min"`) and
//! byte rates (`"500B/s"`).
//!
//! Pure parsing, used by the typed config; each type round-trips through its string form.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A byte count written as `"25MiB"`, `"10MB"`, `"4096"` or a bare integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// A duration written as `"30s"`, `"5m"`, `"2h"`, `"5d"`, `"1w"` or `"250ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

/// A rate written as `"600/min"`, `"10/s"`, `"1000/hour"`, `"5000/day"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// Bytes per second written as a size per second: `"500B/s"`, `"1KiB/s"`, `"2MB/sec"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRate(pub u64);

pub fn parse_byte_rate(s: &str) -> Result<u64, String> {
    let size = s
        .trim()
        .strip_suffix("/s")
        .or_else(|| s.trim().strip_suffix("/sec"))
        .ok_or_else(|| {
            format!("invalid byte rate {s:?}: expected a size per second like \"500B/s\"")
        })?;
    match parse_size(size) {
        Ok(0) => Err(format!("invalid byte rate {s:?}: must be at least 1B/s")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("invalid byte rate {s:?}: {e}")),
    }
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number with an optional unit like \"25MiB\"")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {other:?} (use B, KB, KiB, MB, MiB, GB, GiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected a number and a unit like \"5m\""))?;
    let secs = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" | "sec" | "" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {other:?} (use ms, s, m, h, d, w)"
            ));
        }
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let (count, per) = s
        .split_once('/')
        .ok_or_else(|| format!("invalid rate {s:?}: expected COUNT/UNIT like \"600/min\""))?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("invalid rate {s:?}: the count must be a whole number"))?;
    if count == 0 {
        return Err(format!("invalid rate {s:?}: the count must be at least 1"));
    }
    let per = match per.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        other => {
            return Err(format!(
                "invalid rate {s:?}: unknown unit {other:?} (use sec, min, hour, day)"
            ));
        }
    };
    Ok(Rate { count, per })
}

fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, n) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs.is_multiple_of(n) {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= m && n.is_multiple_of(m) {
                return write!(f, "{}{unit}", n / m);
            }
        }
        write!(f, "{n}B")
    }
}

impl fmt::Display for ByteRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", ByteSize(self.0))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "sec",
            60 => "min",
            3600 => "hour",
            _ => "day",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Accepts either a string or an integer from TOML / environment.
#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrInt {
    Int(u64),
    Str(String),
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrOrInt::deserialize(d)? {
            StrOrInt::Int(n) => Ok(ByteSize(n)),
            StrOrInt::Str(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrOrInt::deserialize(d)? {
            StrOrInt::Int(n) => Ok(HumanDuration(Duration::from_secs(n))),
            StrOrInt::Str(s) => parse_duration(&s)
                .map(HumanDuration)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for ByteRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_byte_rate(&s)
            .map(ByteRate)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_rate(&s).map_err(serde::de::Error::custom)
    }
}

macro_rules! serialize_as_display {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serialize_as_display!(ByteSize, ByteRate, HumanDuration, Rate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let table = [
            ("25MiB", Some(25 << 20)),
            ("10MB", Some(10_000_000)),
            ("4096", Some(4096)),
            ("1 KiB", Some(1024)),
            ("abc", None),
            ("5XB", None),
            ("", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_size(input).ok(), want, "{input}");
        }
    }

    #[test]
    fn durations() {
        let table = [
            ("5m", Some(300)),
            ("5d", Some(432_000)),
            ("30s", Some(30)),
            ("2h", Some(7200)),
            ("10", Some(10)),
            ("5y", None),
            ("m", None),
        ];
        for (input, want) in table {
            assert_eq!(
                parse_duration(input).ok().map(|d| d.as_secs()),
                want,
                "{input}"
            );
        }
        assert_eq!(
            parse_duration("250ms").ok(),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn rates() {
        let r = parse_rate("600/min").ok();
        assert_eq!(r.map(|r| (r.count, r.per.as_secs())), Some((600, 60)));
        assert!(parse_rate("0/min").is_err());
        assert!(parse_rate("600").is_err());
        assert!(parse_rate("5/fortnight").is_err());
    }

    #[test]
    fn byte_rates() {
        let table = [
            ("500B/s", Some(500)),
            ("1KiB/s", Some(1024)),
            ("2MB/sec", Some(2_000_000)),
            ("500", None),
            ("0B/s", None),
            ("fast/s", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_byte_rate(input).ok(), want, "{input}");
        }
        for s in ["500B/s", "1KiB/s"] {
            let r = ByteRate(parse_byte_rate(s).unwrap_or(0));
            assert_eq!(r.to_string(), s);
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["25MiB", "1000B"] {
            assert_eq!(ByteSize(parse_size(s).unwrap_or(0)).to_string(), s);
        }
        for s in ["5m", "5d", "30s", "250ms", "1w"] {
            let d = parse_duration(s).unwrap_or_default();
            assert_eq!(HumanDuration(d).to_string(), s);
        }
    }
}
