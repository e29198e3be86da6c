//! A `tower::retry::Policy` with exponential backoff, full jitter and a shared retry budget.

use std::sync::Arc;

use crate::retry::{Backoff, RetryBudget};

/// Retries what `retryable(request, result)` accepts (callers check idempotency there), within the budget.
///
/// Every original request deposits into the budget; every retry withdraws. Use with
/// `tower::retry::RetryLayer::new(policy)`; requests must be `Clone`.
#[derive(Debug, Clone)]
pub struct BudgetedRetry<F> {
    budget: Arc<RetryBudget>,
    backoff: Backoff,
    attempt: u32,
    retryable: F,
}

impl<F> BudgetedRetry<F> {
    /// A policy sharing `budget`.
    pub fn new(budget: Arc<RetryBudget>, backoff: Backoff, retryable: F) -> Self {
        BudgetedRetry {
            budget,
            backoff,
            attempt: 0,
            retryable,
        }
    }
}

impl<Req: Clone, Res, E, F> tower::retry::Policy<Req, Res, E> for BudgetedRetry<F>
where
    F: Fn(&Req, &Result<Res, E>) -> bool + Clone,
{
    type Future = tokio::time::Sleep;

    fn retry(&mut self, req: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        if self.attempt >= self.backoff.max_retries
            || !(self.retryable)(req, result)
            || !self.budget.try_withdraw()
        {
            return None;
        }
        let delay = self.backoff.delay(self.attempt);
        self.attempt += 1;
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        // tower calls this on the service's own policy (attempt 0) once per original request, and on the
        // per-request clone before each retry: deposit only for the original.
        if self.attempt == 0 {
            self.budget.deposit();
        }
        Some(req.clone())
    }
}
