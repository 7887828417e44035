//! Running FRR's tools.
