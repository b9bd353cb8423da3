//! `tagbinder plan|apply`.
