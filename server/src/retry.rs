//! The wait hint of a refusal (`retry_after_ms`). A leaf module: the error
//! boundary and the runner both use it, neither through the other.

use std::time::Duration;

/// A wait as `retry_after_ms`: rounded up (a client that waits exactly this
/// long must be let in) and at least 1.
pub fn retry_ms(wait: Duration) -> u64 {
    (wait.as_micros().div_ceil(1000) as u64).max(1)
}
