//! The identity of a RED series.

use serde::{Deserialize, Serialize};

/// One RED series: a route of a service in a region.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// The region the collector stamped.
    pub region: String,
    /// `service.name` of the gateway (or service) that served the requests.
    pub service: String,
    /// `http.route`, or the span name when the span has no route.
    pub route: String,
}
