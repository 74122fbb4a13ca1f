//! `Retry-After` on the container's answer (RFC 9110 §10.2.3): how long the container asks the worker
//! to wait before the next attempt. Read on the two statuses that define it for "try again later", 429
//! (Too Many Requests, RFC 6585) and 503 (Service Unavailable); on any other status it is not read.
//! Either form: delta-seconds (`120`) or an HTTP-date (`Sun, 06 Dec 2026 18:00:00 GMT`, and the two
//! obsolete forms HTTP recipients accept). A value that is neither is ignored (the backoff applies), so
//! a container cannot break its own retries with a typo. The delay it asks for lengthens the Consumer's
//! backoff but never beyond `spec.retry.maxBackoffSeconds` (the runtime applies that bound).

use std::time::{Duration, SystemTime};

/// The header's name.
pub const RETRY_AFTER: &str = "retry-after";

/// The seconds an answer of `status` with `Retry-After: value` asks the retry to wait, as of `now`;
/// `None` when the status does not define it or the value is not a valid delta-seconds or HTTP-date.
/// A date in the past asks for 0 s; a date's fraction of a second rounds up.
pub fn asked(status: u16, value: Option<&str>, now: SystemTime) -> Option<u32> {
    if !matches!(status, 429 | 503) {
        return None;
    }
    let value = value?.trim_matches([' ', '\t']);
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // A valid number too large for u32 asks for "very long": the runtime's bound cuts it anyway.
        return Some(value.parse::<u32>().unwrap_or(u32::MAX));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let wait = at.duration_since(now).unwrap_or(Duration::ZERO);
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Some(u32::try_from(seconds).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T18:00:00Z.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_580_000)
    }

    #[test]
    fn delta_seconds_on_429_and_503() {
        assert_eq!(asked(429, Some("5"), now()), Some(5));
        assert_eq!(asked(503, Some(" 120 "), now()), Some(120));
        assert_eq!(asked(503, Some("0"), now()), Some(0));
        assert_eq!(
            asked(429, Some("99999999999999999999"), now()),
            Some(u32::MAX),
            "valid, just very long: the runtime's bound cuts it"
        );
    }

    #[test]
    fn an_http_date_in_each_form_asks_for_the_time_until_it() {
        for date in [
            "Sun, 06 Dec 2026 18:00:30 GMT",
            "Sunday, 06-Dec-26 18:00:30 GMT",
            "Sun Dec  6 18:00:30 2026",
        ] {
            assert_eq!(asked(503, Some(date), now()), Some(30), "{date}");
        }
        let later = now() + Duration::from_millis(500);
        assert_eq!(
            asked(429, Some("Sun, 06 Dec 2026 18:00:30 GMT"), later),
            Some(30),
            "a partial second rounds up"
        );
        assert_eq!(
            asked(429, Some("Sun, 06 Dec 2026 17:59:00 GMT"), now()),
            Some(0),
            "in the past: no extra wait"
        );
    }

    #[test]
    fn bad_values_are_ignored() {
        for value in [
            "",
            " ",
            "-1",
            "+5",
            "1.5",
            "5s",
            "0x10",
            "soon",
            "tomorrow",
            "Sun, 32 Dec 2026 18:00:30 GMT",
            "2026-12-06T18:00:30Z",
        ] {
            assert_eq!(asked(503, Some(value), now()), None, "{value:?}");
        }
        assert_eq!(asked(429, None, now()), None);
    }

    #[test]
    fn other_statuses_do_not_read_it() {
        for status in [200, 204, 400, 404, 408, 500, 502, 504] {
            assert_eq!(asked(status, Some("5"), now()), None, "{status}");
        }
    }
}
