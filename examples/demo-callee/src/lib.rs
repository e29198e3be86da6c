//! Demo service built on the Keel SDK.
