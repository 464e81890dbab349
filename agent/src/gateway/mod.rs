//! The gateways the agent drives. Each turns a set of [`Planned`] weights into its own
//! configuration and confirms the gateway took it; everything else (following the analyzer,
//! safety, reporting) is the agent's and the same for every gateway.
//!
//! Adding a gateway (Caddy's admin API, HAProxy's runtime API, Kong's admin API): a config
//! struct in [`crate::config`], a type implementing [`Gateway`] here, and one arm where the
//! binary picks the gateway. See docs/operations.md, "The gateway agent".

pub mod envoy;
pub mod file;
pub mod traefik;

use std::collections::BTreeMap;
use std::future::Future;

use crate::error::AgentError;

/// One thing in a gateway that splits traffic between regions (an Envoy cluster, a Traefik
/// weighted service), as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSpec {
    /// Its name in the gateway.
    pub name: String,
    /// The Meridian service whose weights it follows.
    pub service: String,
    /// The regions it splits between.
    pub regions: Vec<String>,
}

/// A region's weight in a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Weight {
    /// 0..255 (Route 53's range); 0 drains the region.
    pub weight: u8,
    /// Why it is not normal, when it is not.
    pub reason: Option<String>,
}

/// The weights one target should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// The target's name in the gateway.
    pub name: String,
    /// The Meridian service it follows.
    pub service: String,
    /// Region → weight.
    pub weights: BTreeMap<String, Weight>,
}

impl Planned {
    /// Whether the plan has the same weights as `other` (reasons aside).
    pub fn same_weights(&self, other: &Planned) -> bool {
        self.name == other.name
            && self.weights.len() == other.weights.len()
            && self
                .weights
                .iter()
                .zip(&other.weights)
                .all(|((ra, a), (rb, b))| ra == rb && a.weight == b.weight)
    }
}

/// A gateway the agent can apply weights to.
///
/// Contract: `apply` is given every target's weights at once (level-triggered, not a diff)
/// and returns once the gateway serves them, or with an error saying why not; on error the
/// gateway must still serve what it served before (write a new file whole and rename it into
/// place; never leave a half-written configuration).
pub trait Gateway: Send {
    /// `envoy`, `traefik`: the name reported to the analyzer and in metrics.
    fn kind(&self) -> &'static str;

    /// What the gateway splits traffic for.
    fn targets(&self) -> Vec<TargetSpec>;

    /// Applies the weights of every target.
    fn apply(&mut self, plan: &[Planned]) -> impl Future<Output = Result<(), AgentError>> + Send;
}
