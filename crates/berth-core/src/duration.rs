//! berth's one duration syntax, shared by the config file, command-line flags and promotion
//! rules: a whole number and a unit, `ms`, `s`, `m`, `h`, `d` (24 h) or `w` (7 d), optionally
//! several in a row from the largest unit down (`1h30m`), or a bare `0`.

use std::time::Duration;

/// Parses `500ms`, `30s`, `15m`, `1h`, `2d`, `1w`, `1h30m` or `0`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration (500ms, 30s, 15m, 1h, 2d, 1w, 1h30m)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = Duration::ZERO;
    let mut last_unit = u64::MAX;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(invalid()),
        };
        // Largest unit first, each at most once: `30m1h` and `1m1m` are typos.
        if millis_per_unit >= last_unit {
            return Err(invalid());
        }
        last_unit = millis_per_unit;
        rest = &rest[unit_len..];
        let millis = number.checked_mul(millis_per_unit).ok_or_else(invalid)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(invalid)?;
    }
    Ok(total)
}

/// Writes a duration in the same syntax, exactly and from the largest unit down: `1d1h`,
/// `90s`, `500ms`, `0`; `parse(&display(d)) == d` for whole milliseconds.
pub fn display(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0".to_string();
    }
    let mut text = String::new();
    for (unit, size) in [
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if millis >= size {
            text.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_back() {
        for text in ["0", "500ms", "90s", "1d1h", "2w3d", "1h30m", "1m1s1ms"] {
            let duration = parse(text).unwrap();
            let shown = display(duration);
            assert_eq!(parse(&shown).unwrap(), duration, "{text} shown as {shown}");
        }
        assert_eq!(display(Duration::from_secs(90)), "1m30s");
        assert_eq!(display(Duration::from_secs(86_400 * 14)), "2w");
    }

    #[test]
    fn every_unit_and_combinations() {
        let cases = [
            ("0", Some(0)),
            ("500ms", Some(500)),
            ("30s", Some(30_000)),
            ("15m", Some(900_000)),
            ("1h", Some(3_600_000)),
            ("2d", Some(172_800_000)),
            ("1w", Some(604_800_000)),
            ("1h30m", Some(5_400_000)),
            ("1m500ms", Some(60_500)),
            ("0s", Some(0)),
            ("", None),
            ("s", None),
            ("10", None),
            ("2 hours", None),
            ("1.5h", None),
            ("-1s", None),
            ("30m1h", None),
            ("1m1m", None),
            ("1y", None),
            ("99999999999999999999s", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse(text).ok().map(|duration| duration.as_millis() as u64),
                expected,
                "{text:?}"
            );
        }
        assert_eq!(
            parse("2 hours").unwrap_err(),
            "\"2 hours\" is not a duration (500ms, 30s, 15m, 1h, 2d, 1w, 1h30m)"
        );
    }
}
