//! Workflow rules: pure evaluation of events, conditions and actions, with a bounded cascade.
