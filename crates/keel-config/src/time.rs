//! ISO-8601 timestamps as Spring Boot's error bodies write them (`2024-05-28T12:00:00.000+00:00`).

use std::time::SystemTime;

/// Formats `t` in UTC with millisecond precision and a `+00:00` offset.
pub fn iso8601(t: SystemTime) -> String {
    let (secs, millis) = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_millis()),
        Err(_) => (0, 0),
    };
    iso8601_secs(secs, millis)
}

/// Formats seconds since the epoch (plus milliseconds) in UTC.
pub fn iso8601_secs(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_boot() {
        assert_eq!(iso8601_secs(0, 0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(
            iso8601_secs(1_716_897_600, 5),
            "2024-05-28T12:00:00.005+00:00"
        );
        assert_eq!(
            iso8601_secs(951_782_400, 0),
            "2000-02-29T00:00:00.000+00:00"
        );
    }
}
