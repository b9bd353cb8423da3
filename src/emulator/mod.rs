//! The emulator: both clouds' tag APIs, server side. Placeholder, replaced by the emulator.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Accounts and resources the emulated clouds start with.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// Access keys the clouds accept.
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Resources that exist, with their initial tags.
    #[serde(default)]
    pub resources: Vec<InventoryResource>,
}

/// One access key.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Access key id.
    pub access_key_id: String,
    /// Access key secret.
    pub access_key_secret: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// One resource.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InventoryResource {
    /// `alibaba` or `jdcloud`.
    pub cloud: String,
    /// Region id.
    pub region: String,
    /// Alibaba `ResourceType` or JD `serviceCode`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Resource id.
    pub id: String,
    /// Initial tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// How to run an emulator.
#[derive(Clone, Debug, Default)]
pub struct EmulatorConfig {
    /// Accounts and initial resources.
    pub inventory: Inventory,
    /// Where tags persist across runs; loaded at start when it exists.
    pub state_file: Option<PathBuf>,
}

/// A running emulator.
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
}

impl RunningEmulator {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and persists the state.
    pub async fn shutdown(self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts serving on `listen` (port 0 picks a free port).
pub async fn start(listen: SocketAddr, config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
    let _ = config;
    Ok(RunningEmulator { addr: listen })
}
