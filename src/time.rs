//! Provider timestamps: RFC 3339 / ISO 8601 date-times to milliseconds since the Unix
//! epoch, one parser for every provider (Twilio Event Streams, Postmark, SES and SNS,
//! Standard Webhooks, imports).

/// Milliseconds since the Unix epoch of an ISO 8601 / RFC 3339 date-time with a zone:
/// `2019-11-05T16:33:54.9070259Z`, `2014-08-01T13:28:10.2735393-04:00`,
/// `2024-11-22T23:41:11.894719+00:00` (any number of fraction digits; Postmark sends
/// seven). `None` for anything else: the caller falls back to the time of receipt.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let digits = s.get(from..to)?;
        if digits.bytes().all(|c| c.is_ascii_digit()) {
            digits.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let len = frac.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        millis = format!("{:0<3}", &frac[..len.min(3)]).parse().ok()?;
        rest = &frac[len..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            if h.len() != 2
                || m.len() != 2
                || !h.bytes().chain(m.bytes()).all(|c| c.is_ascii_digit())
            {
                return None;
            }
            let (h, m) = (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 60 + m)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// How far past "now" an event time may lie before it is out of range: clocks of
/// providers, gateway instances and Redis differ by that much at most. Entry points
/// record a time up to this far ahead as "now" ([`event_time`]); the apply script
/// refuses anything later than its own clock plus this.
pub const MAX_SKEW_MS: i64 = 5 * 60_000;

/// The earliest event time dndgate records: 2000-01-01T00:00:00Z. Nothing it tracks
/// happened before; an earlier time is a unit mistake, a zero value or a forgery.
pub const FLOOR_MS: i64 = 946_684_800_000;

/// Why an event time cannot be recorded as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventTimeError {
    /// Later than now plus [`MAX_SKEW_MS`].
    #[error("{} is in the future (more than 5 minutes after now)", format_rfc3339_ms(*.0))]
    Future(i64),
    /// Before [`FLOOR_MS`].
    #[error("{} is before 2000-01-01, the earliest time dndgate records", format_rfc3339_ms(*.0))]
    BeforeFloor(i64),
}

/// The time to record for an event that says it happened at `event_ms`, learned of at
/// `now_ms`: never later than `now_ms` (a time up to [`MAX_SKEW_MS`] ahead is a clock
/// difference and counts as now); an error for a time further ahead or before
/// [`FLOOR_MS`]. An entry point that can say no (an import row) reports the error;
/// [`clamp_event_time`] is the rule for the rest.
pub fn event_time(event_ms: i64, now_ms: i64) -> Result<i64, EventTimeError> {
    if event_ms > now_ms.saturating_add(MAX_SKEW_MS) {
        Err(EventTimeError::Future(event_ms))
    } else if event_ms < FLOOR_MS {
        Err(EventTimeError::BeforeFloor(event_ms))
    } else {
        Ok(event_ms.min(now_ms))
    }
}

/// [`event_time`], with a time out of range recorded as `now_ms` (the time of receipt):
/// a provider's event is never refused for its clock, so it is not retried forever,
/// and it can neither pin a record against later events nor hide behind an unreadable
/// time. `state::apply` puts every change's time through this, whatever its road.
pub fn clamp_event_time(event_ms: i64, now_ms: i64) -> i64 {
    event_time(event_ms, now_ms).unwrap_or(now_ms)
}

/// The days of `month` (1 to 12) in `year` (proleptic Gregorian).
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Milliseconds since the Unix epoch, now: the one clock. Everything below the entry
/// points takes "now" as a parameter, so tests drive time instead of sleeping.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the inverse of
/// [`days_from_civil`], Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-12-07T04:12:25.123Z` for milliseconds since the epoch (UTC, always three
/// fraction digits): the one spelling dndgate writes, and [`parse_rfc3339_ms`] reads back.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_are_clamped_to_now_and_refused_out_of_range() {
        let now = 1_796_000_000_000;
        assert_eq!(event_time(now - 1, now), Ok(now - 1));
        assert_eq!(event_time(now + MAX_SKEW_MS, now), Ok(now));
        assert_eq!(
            event_time(now + MAX_SKEW_MS + 1, now),
            Err(EventTimeError::Future(now + MAX_SKEW_MS + 1))
        );
        assert_eq!(event_time(FLOOR_MS, now), Ok(FLOOR_MS));
        assert_eq!(
            event_time(-62_135_596_800_000, now),
            Err(EventTimeError::BeforeFloor(-62_135_596_800_000))
        );
        assert_eq!(clamp_event_time(i64::MAX, now), now);
        assert_eq!(clamp_event_time(0, now), now);
        assert_eq!(
            EventTimeError::Future(4_102_444_800_000).to_string(),
            "2100-01-01T00:00:00.000Z is in the future (more than 5 minutes after now)"
        );
    }

    /// The spellings providers send (Postmark, Twilio, SES and SNS), to their time.
    #[test]
    fn rfc3339_table() {
        let cases: &[(&str, i64)] = &[
            ("2019-11-05T16:33:54.9070259Z", 1_572_971_634_907),
            ("2019-11-05T16:33:54Z", 1_572_971_634_000),
            ("2014-08-01T13:28:10.2735393-04:00", 1_406_914_090_273),
            ("2024-11-22T23:41:11.894719+00:00", 1_732_318_871_894),
            ("1970-01-01T00:00:00Z", 0),
            ("2025-01-01T00:00:00.000Z", 1_735_689_600_000),
            ("2024-02-29T12:00:00.5+02:00", 1_709_200_800_500),
            ("2000-03-01T00:00:00-00:30", 951_870_600_000),
            ("1970-01-01T00:00:00.001Z", 1),
            ("2022-07-28T21:23:58.317Z", 1_659_043_438_317),
            ("2022-07-28T23:23:58.317+02:00", 1_659_043_438_317),
            ("2024-02-29T12:00:00.123456Z", 1_709_208_000_123),
            ("2024-02-29 12:00:00Z", 1_709_208_000_000),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339_ms(text), Some(*want), "{text}");
        }
    }

    #[test]
    fn item_02_impossible_dates_and_offsets_are_not_times() {
        // Consent evidence (and provider times) must parse as RFC 3339: a date alone,
        // a local time, a month or a day the calendar does not have, or an offset past
        // 23:59, is no time at all.
        for bad in [
            "2019-11-05T16:33:54",
            "2019-11-05",
            "2019-13-05T16:33:54Z",
            "2019-11-05T16:33:54.Z",
            "2019-11-05T16:33:54+0400",
            "not a time at all, no",
            "2025-13-01T00:00:00Z",
            "2025-01-01 00:00",
            "yesterday",
            "2025-01-01T00:00:00",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "",
            "2026-02-31T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T10:00:00Z",
            "2026-01-01T00:00:00+25:00",
            "2026-01-01T00:00:00-00:60",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
        assert!(parse_rfc3339_ms("2024-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339_ms("2000-02-29T00:00:00Z").is_some());
        assert_eq!(parse_rfc3339_ms("1900-02-29T00:00:00Z"), None);
        assert!(parse_rfc3339_ms("2026-01-01T00:00:00+23:59").is_some());
    }

    #[test]
    fn format_and_parse_are_inverse_over_four_centuries() {
        // Every 7th hour plus an odd millisecond, 1970..2370, and across leap days.
        let mut ms = 0i64;
        while ms < 12_623_000_000_000 {
            let s = format_rfc3339_ms(ms);
            assert_eq!(parse_rfc3339_ms(&s), Some(ms), "{s}");
            ms += 7 * 3_600_000 + 777;
        }
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
