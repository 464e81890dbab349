//! The alerting state kept across restarts, with the store's objects (`_analysis/alerts.json`):
//! the alerts (so a restarted analyzer keeps their `startsAt` and can still say they resolved),
//! what each Alertmanager was sent, and each webhook's groups (so a restart does not notify a
//! group again). JSON, as the alerts' evidence is arbitrary JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::group::Grouper;
use super::notify::Resender;
use super::state::AlertBook;
use crate::store::Store;

/// Bumped when the saved shape changes incompatibly; other versions are ignored.
const VERSION: u32 = 1;

/// The saved state.
#[derive(Default, Serialize, Deserialize)]
pub struct Saved {
    version: u32,
    /// Every alert known.
    pub book: AlertBook,
    /// What the Alertmanagers were sent.
    pub resender: Resender,
    /// Each webhook's groups, by its URL.
    pub groupers: BTreeMap<String, Grouper>,
}

/// The same, borrowed, for saving.
#[derive(Serialize)]
pub struct SavedRef<'a> {
    version: u32,
    book: &'a AlertBook,
    resender: &'a Resender,
    groupers: BTreeMap<&'a str, &'a Grouper>,
}

impl<'a> SavedRef<'a> {
    /// The state to save.
    pub fn new(
        book: &'a AlertBook,
        resender: &'a Resender,
        groupers: BTreeMap<&'a str, &'a Grouper>,
    ) -> Self {
        Self {
            version: VERSION,
            book,
            resender,
            groupers,
        }
    }
}

fn key(store: &Store) -> object_store::path::Path {
    store.objects().table_root("_analysis").join("alerts.json")
}

/// The saved state, or an empty one when there is none or it cannot be read (logged).
pub async fn load(store: &Store) -> Saved {
    let bytes = match store.objects().get(&key(store)).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Saved::default(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the saved alert state failed; starting without it");
            return Saved::default();
        }
    };
    match serde_json::from_slice::<Saved>(&bytes) {
        Ok(saved) if saved.version == VERSION => saved,
        Ok(saved) => {
            tracing::warn!(
                version = saved.version,
                "saved alert state of another version ignored"
            );
            Saved::default()
        }
        Err(e) => {
            tracing::warn!(error = %e, "saved alert state unreadable; starting without it");
            Saved::default()
        }
    }
}

/// `state` encoded for [`put`] (the caller may hold locks; nothing here awaits).
pub fn encode(state: &SavedRef<'_>) -> Option<Vec<u8>> {
    serde_json::to_vec(state)
        .map_err(|e| tracing::error!(error = %e, "encoding the alert state failed"))
        .ok()
}

/// Saves encoded state; a failure is logged (the next change saves again).
pub async fn put(store: &Store, bytes: Vec<u8>) {
    if let Err(e) = store.objects().put(&key(store), bytes).await {
        tracing::warn!(error = %e, "saving the alert state failed");
    }
}
