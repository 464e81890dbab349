//! A recommendation — a change of routing weights or of capacity — and its rows in the
//! `recommendations` table.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampNanosecondBuilder};
use arrow::error::ArrowError;
use serde::{Deserialize, Serialize};

/// What a recommendation changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A region's weight to 0: its traffic goes to the others.
    Failover,
    /// A partial move away from a degraded region.
    Shift,
    /// A step of a region's return to its normal weight.
    Failback,
    /// More instances in a region.
    ScaleOut,
    /// Fewer instances in a region.
    ScaleIn,
}

impl Kind {
    /// The name in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Failover => "failover",
            Kind::Shift => "shift",
            Kind::Failback => "failback",
            Kind::ScaleOut => "scale_out",
            Kind::ScaleIn => "scale_in",
        }
    }

    /// Whether it is about routing (weights) rather than capacity.
    pub fn is_routing(self) -> bool {
        matches!(self, Kind::Failover | Kind::Shift | Kind::Failback)
    }
}

/// The lifecycle of a recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The desired state now.
    Active,
    /// Replaced by a newer recommendation for the same region and service.
    Superseded,
    /// No longer needed: the region is back to normal.
    Resolved,
}

impl State {
    /// The name in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Superseded => "superseded",
            State::Resolved => "resolved",
        }
    }
}

/// One recommendation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Unique id.
    pub id: String,
    /// When it was made (or its state last changed), unix ns.
    pub time_ns: i64,
    /// What it changes.
    pub kind: Kind,
    /// The region it is about.
    pub region: String,
    /// The service (`*`: every service of the region).
    pub service: String,
    /// Desired weights per region, or `{"instances": n}`.
    pub target: serde_json::Value,
    /// The same before the change.
    pub previous: Option<serde_json::Value>,
    /// One sentence a person can act on.
    pub reason: String,
    /// Anomalies, probe results and forecast values behind it.
    pub evidence: serde_json::Value,
    /// Its lifecycle state.
    pub state: State,
    /// When it stops applying by itself (capacity recommendations), unix ns.
    pub expires_at_ns: Option<i64>,
    /// Whether agents should apply it (false in forecast-only mode).
    pub apply: bool,
}

/// The `recommendations` rows for `recs`.
pub fn batch(recs: &[Recommendation]) -> Result<RecordBatch, ArrowError> {
    let ts = || TimestampNanosecondBuilder::new().with_timezone("UTC");
    let (mut time, mut expires) = (ts(), ts());
    let mut text: Vec<StringBuilder> = (0..9).map(|_| StringBuilder::new()).collect();
    for r in recs {
        time.append_value(r.time_ns);
        text[0].append_value(&r.id);
        text[1].append_value(r.kind.as_str());
        text[2].append_value(&r.region);
        text[3].append_value(&r.service);
        text[4].append_value(r.target.to_string());
        text[5].append_option(r.previous.as_ref().map(ToString::to_string));
        text[6].append_value(&r.reason);
        text[7].append_value(r.evidence.to_string());
        text[8].append_value(r.state.as_str());
        expires.append_option(r.expires_at_ns);
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(time.finish())];
    columns.extend(text.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.push(Arc::new(expires.finish()));
    RecordBatch::try_new(crate::schema::recommendations(), columns)
}

/// A new id: time-ordered, unique.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
