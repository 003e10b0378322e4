//! Client limits kept in this process: exact for one instance (every thread shares them).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::core::route::Client;

use super::{Ask, Counters, Grant, Refusal, Used};

/// Each client's [`Counters`], by client name.
#[derive(Debug, Default)]
pub struct LocalLimits {
    clients: Mutex<HashMap<&'static str, Counters>>,
}

impl LocalLimits {
    /// No client has used anything yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves `ask` against `client`'s limits.
    pub fn reserve(&self, client: &'static Client, ask: &Ask) -> Result<Grant, Refusal> {
        // The counters stay consistent whatever panicked while holding the lock: each update
        // is a handful of integer writes.
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.entry(client.name).or_default().reserve(client, ask)
    }

    /// Settles a grant `reserve` gave for `client`.
    pub fn settle(&self, client: &'static Client, grant: &Grant, used: &Used) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counters) = clients.get_mut(client.name) {
            counters.settle(grant, used);
        }
    }

    /// A copy of `client`'s counters (for the status page).
    pub fn counters(&self, client: &str) -> Option<Counters> {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.get(client).cloned()
    }
}
