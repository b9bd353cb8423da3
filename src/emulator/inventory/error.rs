//! What is wrong with an inventory, typed: which document, field or resource, and why.

use super::{CLOUDS, INVENTORY_API_VERSION, INVENTORY_KIND};

/// What is wrong with an inventory (or the emulator's saved state).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// The text breaks a bound of YAML input, or does not parse.
    #[error("document {}: {}", .0.document, .0)]
    Yaml(crate::input::YamlLimitError),
    /// A number beyond 64 bits (refused before serde_yaml would quote its digits).
    #[error("document {document}: {field}: {rule}")]
    OversizedNumber {
        /// 1-based document number.
        document: usize,
        /// Where.
        field: String,
        /// Why.
        rule: String,
    },
    /// Several documents, not exactly one of them an inventory.
    #[error("a file of several documents must hold exactly one {INVENTORY_KIND}; it holds {0}")]
    NotOneInventory(usize),
    /// Not an inventory document (serde's message).
    #[error("{0}")]
    Syntax(String),
    /// An `apiVersion` the emulator does not serve.
    #[error("apiVersion {0:?} is not served; use {INVENTORY_API_VERSION:?}")]
    ApiVersion(String),
    /// A `kind` that is not an inventory.
    #[error("kind {0:?} is not an inventory; use {INVENTORY_KIND:?}")]
    Kind(String),
    /// An account without an access key id.
    #[error("accounts: an accessKeyId is empty")]
    EmptyKeyId,
    /// An access key listed twice.
    #[error("accounts: access key {0:?} is listed twice")]
    KeyTwice(String),
    /// A cloud the emulator does not serve.
    #[error("resource {resource}: cloud {cloud:?} is not one of {CLOUDS:?}")]
    Cloud {
        /// `cloud/type/id`.
        resource: String,
        /// The cloud.
        cloud: String,
    },
    /// An empty type or id.
    #[error("resource {0}: type and id must not be empty")]
    Empty(String),
    /// An AWS resource whose id is not its ARN.
    #[error("resource {resource}: {rule}")]
    Aws {
        /// `cloud/type/id`.
        resource: String,
        /// Why.
        rule: crate::emulator::aws::ArnError,
    },
    /// A resource listed twice.
    #[error("resource {0} is listed twice")]
    Twice(String),
    /// AWS resources of two accounts.
    #[error(
        "resource {resource}: account {found} is not {known}, the account of the other AWS \
         resources; the emulator serves one AWS account"
    )]
    Accounts {
        /// `cloud/type/id`.
        resource: String,
        /// Its account.
        found: String,
        /// The others'.
        known: String,
    },
}
