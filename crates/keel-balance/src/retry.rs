//! When a failed call may be retried on another instance: idempotent requests, or ones marked safe.

/// Whether a request may be sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// The method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE).
    Idempotent,
    /// Not idempotent, but the caller marked it safe to retry (e.g. it carries an idempotency key).
    MarkedSafe,
    /// Must not be retried.
    Unsafe,
}

impl Safety {
    /// Classifies an HTTP method (RFC 9110 §9.2.2).
    pub fn of_method(method: &http::Method) -> Safety {
        use http::Method;
        match *method {
            Method::GET
            | Method::HEAD
            | Method::OPTIONS
            | Method::PUT
            | Method::DELETE
            | Method::TRACE => Safety::Idempotent,
            _ => Safety::Unsafe,
        }
    }

    /// Whether a retry is allowed at all.
    pub fn retryable(self) -> bool {
        !matches!(self, Safety::Unsafe)
    }
}

/// Retry on the next instance (Ribbon's `MaxAutoRetriesNextServer`, default 1; never the same server).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Extra attempts, each on an instance not tried yet.
    pub max_retries_next_instance: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries_next_instance: 1,
        }
    }
}

impl RetryPolicy {
    /// Whether attempt number `attempt` (1 = first retry) may be made for a request of `safety`.
    pub fn allows(&self, attempt: u32, safety: Safety) -> bool {
        safety.retryable() && attempt <= self.max_retries_next_instance
    }
}
