//! Offline commands over series files, running the live path's code: `meridian detect`.

pub mod detect;
pub mod series;
