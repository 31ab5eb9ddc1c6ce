//! Timestamps. Everything Enclave records is UTC, RFC 3339, millisecond precision.

pub fn now_utc() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
