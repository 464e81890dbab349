//! Offline commands over series files, running the live path's code: `meridian detect` and
//! `meridian forecast`.

pub mod detect;
pub mod forecast;
pub mod series;
