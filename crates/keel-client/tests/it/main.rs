//! Integration tests of the SDK against real registries over real sockets.
