//! `meridian evaluate`: how well the detectors do on labelled data.

pub mod nab;
pub mod scoring;

/// Options of `meridian evaluate`.
#[derive(Clone, Debug, clap::Args)]
pub struct EvaluateArgs {
    /// Which evaluation.
    #[command(subcommand)]
    pub which: Which,
}

/// The evaluations.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Which {
    /// Score anomaly detection on a NAB corpus with NAB v1.1's rules.
    Nab(nab::NabArgs),
}
