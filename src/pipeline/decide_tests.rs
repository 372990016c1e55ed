//! Unit tests of the decision rules.
