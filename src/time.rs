//! Timestamps. Everything Enclave records is UTC, RFC 3339, millisecond precision.

pub fn now_utc() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Seconds since the Unix epoch (what the database compares).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The UTC timestamp `days` days ago, in the same format as [`now_utc`]
/// (so the two compare as strings).
pub fn days_ago_utc(days: u64) -> String {
    let then = std::time::SystemTime::now()
        .checked_sub(std::time::Duration::from_secs(days.saturating_mul(86_400)))
        .unwrap_or(std::time::UNIX_EPOCH);
    humantime::format_rfc3339_millis(then).to_string()
}

/// `strftime` for today's date in UTC, for chat templates that print it
/// (`strftime_now("%d %b %Y")`). Supports the directives templates use.
pub fn strftime_now_utc(format: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    // "YYYY-MM-DDTHH:MM:SSZ"
    let field = |range: std::ops::Range<usize>| stamp.get(range).unwrap_or("00");
    let month: usize = field(5..7).parse().unwrap_or(1);
    let month_name = MONTHS[month.clamp(1, 12) - 1];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(field(0..4)),
            Some('y') => out.push_str(field(2..4)),
            Some('m') => out.push_str(field(5..7)),
            Some('d') => out.push_str(field(8..10)),
            Some('H') => out.push_str(field(11..13)),
            Some('M') => out.push_str(field(14..16)),
            Some('S') => out.push_str(field(17..19)),
            Some('B') => out.push_str(month_name),
            Some('b') => out.push_str(&month_name[..3]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}
