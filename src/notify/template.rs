//! Rendering notification templates (minijinja, strict undefined, header-safe subjects).
