//! One binding, one pass.
