//! When to try an event again, and what an endpoint's answer means. Pure: the clock
//! and the random jitter are passed in.

use std::time::Duration;

/// The waits before each retry, after the first try fails: about three days in all
/// (71 h 35 min), front-loaded so a short outage costs seconds and a deploy minutes.
/// After the last retry fails the event is dead-lettered.
pub const RETRY_DELAYS: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(20 * 3600),
];

/// Each wait is stretched or shrunk by up to this share, at random, so endpoints that
/// failed together do not all come back at the same instant.
pub const JITTER: f64 = 0.1;

/// How long one delivery may take, connection included; a slower answer is a failure
/// to retry.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// An endpoint that has not taken a delivery for this long while failing is
/// disabled: longer than the whole retry schedule, so one event's schedule runs out
/// (and dead-letters it) before its endpoint is given up on.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);

/// What to do after one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// The endpoint will never take this event (a 4xx other than 408, 409 and 429):
    /// dead-letter it now; retrying cannot help.
    Refused,
    /// Worth trying again later: 408, 409, 429, any 5xx, a 3xx (redirects are not
    /// followed: the URL is what the operator configured), a timeout or a connection
    /// failure.
    Retry,
}

/// The verdict on an HTTP status; `None` (no answer: timeout, connection refused,
/// TLS failure) is [`Verdict::Retry`].
pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(408 | 409 | 429) => Verdict::Retry,
        Some(400..=499) => Verdict::Refused,
        _ => Verdict::Retry,
    }
}

/// The delivery settings (`[events_out]`): the defaults above unless configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The waits before each retry ([`RETRY_DELAYS`]).
    pub retry_delays: Vec<Duration>,
    /// How long one try may take ([`DELIVERY_TIMEOUT`]).
    pub timeout: Duration,
    /// When a failing endpoint is disabled ([`DISABLE_AFTER`]).
    pub disable_after: Duration,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule {
            retry_delays: RETRY_DELAYS.to_vec(),
            timeout: DELIVERY_TIMEOUT,
            disable_after: DISABLE_AFTER,
        }
    }
}

impl Schedule {
    /// When to try again after try number `tries` (1 for the first) failed at
    /// `now_ms`, with `random` uniform in [0, 1); `None` when the schedule is spent
    /// (dead-letter).
    pub fn next_try_ms(&self, tries: u32, now_ms: i64, random: f64) -> Option<i64> {
        next_try_ms(&self.retry_delays, tries, now_ms, random)
    }
}

/// [`Schedule::next_try_ms`] over `delays`.
pub fn next_try_ms(delays: &[Duration], tries: u32, now_ms: i64, random: f64) -> Option<i64> {
    let delay = delays.get(tries.checked_sub(1)? as usize)?;
    let stretch = 1.0 + JITTER * (2.0 * random.clamp(0.0, 1.0) - 1.0);
    Some(now_ms + (delay.as_millis() as f64 * stretch) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_documented_verdicts() {
        let rows: &[(Option<u16>, Verdict)] = &[
            (Some(200), Verdict::Delivered),
            (Some(204), Verdict::Delivered),
            (Some(299), Verdict::Delivered),
            (Some(301), Verdict::Retry),
            (Some(400), Verdict::Refused),
            (Some(401), Verdict::Refused),
            (Some(404), Verdict::Refused),
            (Some(410), Verdict::Refused),
            (Some(408), Verdict::Retry),
            (Some(409), Verdict::Retry),
            (Some(429), Verdict::Retry),
            (Some(500), Verdict::Retry),
            (Some(503), Verdict::Retry),
            (None, Verdict::Retry),
        ];
        for (status, want) in rows {
            assert_eq!(verdict(*status), *want, "{status:?}");
        }
    }

    #[test]
    fn the_schedule_spans_about_three_days_and_then_ends() {
        let total: Duration = RETRY_DELAYS.iter().sum();
        assert!(total > Duration::from_secs(70 * 3600), "{total:?}");
        assert!(total < Duration::from_secs(74 * 3600), "{total:?}");
        assert!(DISABLE_AFTER > total.mul_f64(1.0 + JITTER));
        let now = crate::time::now_ms();
        let s = Schedule::default();
        assert_eq!(s.next_try_ms(1, now, 0.5), Some(now + 5_000));
        assert_eq!(s.next_try_ms(0, now, 0.5), None);
        assert_eq!(s.next_try_ms(RETRY_DELAYS.len() as u32 + 1, now, 0.5), None);
        let last = RETRY_DELAYS.len() as u32;
        assert!(s.next_try_ms(last, now, 0.5).is_some());
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let now = crate::time::now_ms();
        for (tries, delay) in RETRY_DELAYS.iter().enumerate() {
            let ms = delay.as_millis() as i64;
            let low = next_try_ms(&RETRY_DELAYS, tries as u32 + 1, now, 0.0).unwrap() - now;
            let high = next_try_ms(&RETRY_DELAYS, tries as u32 + 1, now, 0.999_999).unwrap() - now;
            assert!(low >= ms * 9 / 10 && low < ms, "{tries}: {low} vs {ms}");
            assert!(high <= ms * 11 / 10 && high > ms, "{tries}: {high} vs {ms}");
        }
    }
}
