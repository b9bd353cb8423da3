//! The inventory: the access keys the emulated clouds accept and the resources that exist at
//! start, read from a YAML or JSON file (or from a `CloudInventory` document of a manifest set).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::EmulatorError;

mod error;
pub use error::InventoryError;

/// Cloud name of Alibaba Cloud resources (`InventoryResource::cloud`).
pub const ALIBABA: &str = "alibaba";
/// Cloud name of JD Cloud resources (`InventoryResource::cloud`).
pub const JDCLOUD: &str = "jdcloud";
/// Cloud name of AWS resources (`InventoryResource::cloud`): type `service[:type]` as
/// `ResourceTypeFilters` names it, id the ARN.
pub const AWS: &str = "aws";
/// Every cloud the emulator knows.
pub const CLOUDS: [&str; 3] = [ALIBABA, JDCLOUD, AWS];

/// Largest inventory file read.
pub const MAX_INVENTORY_BYTES: u64 = 16 * 1024 * 1024;

/// `apiVersion` of an inventory written as a Kubernetes-style document.
pub const INVENTORY_API_VERSION: &str = "emulator.tagbinder.io/v1alpha1";
/// `kind` of an inventory written as a Kubernetes-style document.
pub const INVENTORY_KIND: &str = "CloudInventory";

/// Accounts and resources the emulated clouds start with.
///
/// Deserialising also accepts top-level `apiVersion` (`emulator.tagbinder.io/v1alpha1`) and
/// `kind` (`CloudInventory`), so that an inventory can be one document of a manifest set; any
/// other value of those two keys is an error.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", try_from = "InventoryDocument")]
pub struct Inventory {
    /// Access keys the clouds accept.
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Resources that exist, with their initial tags.
    #[serde(default)]
    pub resources: Vec<InventoryResource>,
}

/// The inventory as written, with the optional document header.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InventoryDocument {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    accounts: Vec<Account>,
    #[serde(default)]
    resources: Vec<InventoryResource>,
}

impl TryFrom<InventoryDocument> for Inventory {
    type Error = InventoryError;

    fn try_from(document: InventoryDocument) -> Result<Self, Self::Error> {
        if let Some(api_version) = document.api_version.filter(|v| v != INVENTORY_API_VERSION) {
            return Err(InventoryError::ApiVersion(api_version));
        }
        if let Some(kind) = document.kind.filter(|k| k != INVENTORY_KIND) {
            return Err(InventoryError::Kind(kind));
        }
        Ok(Inventory {
            accounts: document.accounts,
            resources: document.resources,
        })
    }
}

/// One access key.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Access key id.
    #[serde(deserialize_with = "key_id_text")]
    pub access_key_id: String,
    /// Access key secret.
    #[serde(deserialize_with = "secret_text")]
    pub access_key_secret: String,
}

/// A secret's text; a value of another type is refused without being shown (serde's own
/// message would quote it: ``invalid type: integer `918273645546372819` ``).
fn secret_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    text_not_shown(deserializer, SECRET_TYPE_ERROR)
}

/// An access key id's text, refused as a secret is: by its place in the document, whatever
/// it looks like (a long digit string could be a secret pasted in the wrong field).
fn key_id_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    text_not_shown(deserializer, KEY_ID_TYPE_ERROR)
}

/// A string, or `error` (which shows nothing of the value).
fn text_not_shown<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    error: &'static str,
) -> Result<String, D::Error> {
    struct SecretText;

    impl serde::de::Visitor<'_> for SecretText {
        type Value = String;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<String, E> {
            Ok(value.to_string())
        }

        fn visit_string<E: serde::de::Error>(self, value: String) -> Result<String, E> {
            Ok(value)
        }
    }

    deserializer
        .deserialize_string(SecretText)
        .map_err(|_| serde::de::Error::custom(error))
}

/// The error of a secret that is not a string.
const SECRET_TYPE_ERROR: &str =
    "accessKeySecret must be a string; quote it (the value is not shown)";
/// The error of an access key id that is not a string.
const KEY_ID_TYPE_ERROR: &str = "accessKeyId must be a string; quote it (the value is not shown)";

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The account UID (Alibaba Cloud's 16-digit account id, used in the Tag service's ARNs) of
/// an access key: derived from the access key id, so that it is stable across runs and
/// needs no configuration. Written out at start by `tagbinder emulator`.
pub fn account_uid(access_key_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("tagbinder-emulator-uid:{access_key_id}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // NB: 16 digits, the first not 0, like real account ids.
    let number = u64::from_be_bytes(first) % 9_000_000_000_000_000 + 1_000_000_000_000_000;
    number.to_string()
}

/// Access key id to secret, for every cloud; and the temporary credentials the emulator
/// issued (STS `AssumeRoleWithOIDC`, the ECS metadata service), each for one account.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    secrets: HashMap<String, SecretString>,
    /// The inventory's first access key id: the account of the ECS instance RAM role.
    first: Option<String>,
    issued: std::sync::Mutex<HashMap<String, IssuedKey>>,
}

/// Temporary credentials the emulator issued.
#[derive(Debug)]
struct IssuedKey {
    secret: SecretString,
    token: SecretString,
    expiration: jiff::Timestamp,
    /// The access key id of the account they act for.
    owner: String,
}

/// Temporary credentials as issued: the key, its token and when they expire.
pub(crate) struct Issued {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: String,
    pub expiration: jiff::Timestamp,
}

/// A key that verifies signatures: its secret and the account (access key id) it acts for.
pub(crate) struct Resolved {
    pub secret: SecretString,
    pub owner: String,
}

/// Why a key (and its token) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyRefusal {
    /// Not an access key of the inventory, nor one the emulator issued.
    Unknown,
    /// Temporary credentials without their token, or with another token; or an inventory
    /// key with a token.
    TokenMismatch,
    /// Temporary credentials past their expiration.
    Expired,
}

/// Random text of `len` characters from [A-Za-z0-9].
fn random_text(len: usize) -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Accounts {
    /// The accounts of an inventory.
    pub fn new(accounts: &[Account]) -> Self {
        let secrets = accounts
            .iter()
            .map(|a| {
                let secret = SecretString::from(a.access_key_secret.clone());
                (a.access_key_id.clone(), secret)
            })
            .collect();
        Accounts {
            secrets,
            first: accounts.first().map(|a| a.access_key_id.clone()),
            issued: std::sync::Mutex::default(),
        }
    }

    /// The access key id of the account whose UID is `uid`.
    pub fn by_uid(&self, uid: &str) -> Option<String> {
        let mut ids: Vec<&String> = self.secrets.keys().collect();
        ids.sort();
        ids.into_iter().find(|id| account_uid(id) == uid).cloned()
    }

    /// The inventory's first access key id (the ECS instance RAM role's account).
    pub fn first(&self) -> Option<&str> {
        self.first.as_deref()
    }

    /// Issues temporary credentials for the account of `owner` (an access key id), valid
    /// until `now + ttl`.
    pub fn issue(&self, owner: &str, ttl: std::time::Duration, now: jiff::Timestamp) -> Issued {
        let expiration = now
            .checked_add(jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(jiff::Timestamp::MAX)
            // NB: the wire form has whole seconds; truncated, so that the credentials never
            // outlive the lifetime asked for.
            .round(
                jiff::TimestampRound::new()
                    .smallest(jiff::Unit::Second)
                    .mode(jiff::RoundMode::Trunc),
            )
            .unwrap_or(now);
        let issued = Issued {
            access_key_id: format!("STS.NT{}", random_text(24)),
            access_key_secret: random_text(40),
            security_token: format!("CAIS{}", random_text(120)),
            expiration,
        };
        let mut keys = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        // NB: keys expired for an hour are forgotten as new ones are issued, so that the table
        // stays small; until then they are refused as expired, as the cloud does.
        let forgotten = now - jiff::SignedDuration::from_secs(3600);
        keys.retain(|_, key| key.expiration > forgotten);
        keys.insert(
            issued.access_key_id.clone(),
            IssuedKey {
                secret: SecretString::from(issued.access_key_secret.clone()),
                token: SecretString::from(issued.security_token.clone()),
                expiration,
                owner: owner.to_string(),
            },
        );
        issued
    }

    /// The secret of one of the inventory's own access keys (not of issued ones).
    pub fn secret(&self, access_key_id: &str) -> Option<&SecretString> {
        self.secrets.get(access_key_id)
    }

    /// The secret and account of `access_key_id`, presented with `token` at `now`.
    pub fn resolve(
        &self,
        access_key_id: &str,
        token: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<Resolved, KeyRefusal> {
        use secrecy::ExposeSecret;
        if let Some(secret) = self.secrets.get(access_key_id) {
            if token.is_some() {
                return Err(KeyRefusal::TokenMismatch);
            }
            return Ok(Resolved {
                secret: secret.clone(),
                owner: access_key_id.to_string(),
            });
        }
        let keys = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        let key = keys.get(access_key_id).ok_or(KeyRefusal::Unknown)?;
        let matches = token.is_some_and(|token| {
            super::constant_time_eq(token.as_bytes(), key.token.expose_secret().as_bytes())
        });
        if !matches {
            return Err(KeyRefusal::TokenMismatch);
        }
        if now >= key.expiration {
            return Err(KeyRefusal::Expired);
        }
        Ok(Resolved {
            secret: key.secret.clone(),
            owner: key.owner.clone(),
        })
    }

    /// The account UID of a known access key id ([`account_uid`]).
    pub fn uid(&self, access_key_id: &str) -> Option<String> {
        self.secrets
            .contains_key(access_key_id)
            .then(|| account_uid(access_key_id))
    }
}

/// One resource.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InventoryResource {
    /// `alibaba`, `jdcloud` or `aws`.
    pub cloud: String,
    /// Region id. Empty: the resource answers in every region.
    pub region: String,
    /// Alibaba `ResourceType`, JD `serviceCode`, or AWS `service[:type]` (`ec2:instance`,
    /// `s3`; the id is then the ARN).
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Resource id.
    pub id: String,
    /// Initial tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Inventory {
    /// Reads an inventory file: JSON when the name ends in `.json`, YAML otherwise. A YAML file
    /// of several documents (a manifest set) must hold exactly one `CloudInventory` document;
    /// the others are skipped.
    pub fn load(path: &Path) -> Result<Inventory, EmulatorError> {
        let fail = |message: String| EmulatorError::Inventory {
            path: path.to_path_buf(),
            message,
        };
        let text = crate::input::read_text_file(path, MAX_INVENTORY_BYTES)
            .map_err(|error| fail(error.to_string()))?;
        let inventory = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            // NB: serde_json refuses nesting deeper than 128 levels itself, early.
            serde_json::from_str(&text).map_err(|error| InventoryError::Syntax(error.to_string()))
        } else {
            let limits = crate::input::YamlLimits::for_file(MAX_INVENTORY_BYTES);
            crate::input::check_yaml(&text, limits)
                .map_err(InventoryError::Yaml)
                .and_then(|()| refuse_oversized_numbers(&text))
                .and_then(|()| from_yaml_documents(&text))
        }
        .map_err(|error| fail(error.to_string()))?;
        inventory
            .validate()
            .map_err(|error| fail(error.to_string()))?;
        Ok(inventory)
    }

    /// Checks what serde cannot: known clouds, non-empty names, no resource or access key
    /// listed twice.
    pub fn validate(&self) -> Result<(), InventoryError> {
        let mut key_ids = BTreeSet::new();
        for account in &self.accounts {
            if account.access_key_id.is_empty() {
                return Err(InventoryError::EmptyKeyId);
            }
            if !key_ids.insert(account.access_key_id.as_str()) {
                return Err(InventoryError::KeyTwice(account.access_key_id.clone()));
            }
        }
        validate_resources(&self.resources)
    }
}

impl InventoryResource {
    /// `cloud/type/id`, for messages.
    pub(crate) fn name(&self) -> String {
        format!("{}/{}/{}", self.cloud, self.resource_type, self.id)
    }
}

/// Checks a resource list (from an inventory or a state file): known clouds, non-empty type
/// and id, no (cloud, type, id) twice.
pub(crate) fn validate_resources(resources: &[InventoryResource]) -> Result<(), InventoryError> {
    let mut seen = BTreeSet::new();
    for resource in resources {
        let name = resource.name();
        if !CLOUDS.contains(&resource.cloud.as_str()) {
            return Err(InventoryError::Cloud {
                resource: name,
                cloud: resource.cloud.clone(),
            });
        }
        if resource.resource_type.is_empty() || resource.id.is_empty() {
            return Err(InventoryError::Empty(name));
        }
        if resource.cloud == AWS {
            super::aws::check_resource(resource).map_err(|rule| InventoryError::Aws {
                resource: name.clone(),
                rule,
            })?;
        }
        if !seen.insert((&resource.cloud, &resource.resource_type, &resource.id)) {
            return Err(InventoryError::Twice(name));
        }
    }
    Ok(())
}

/// Refuses a number beyond 64 bits before serde_yaml reads the text: its error would quote
/// the digits (a secret of 20 to 39 digits, say).
fn refuse_oversized_numbers(text: &str) -> Result<(), InventoryError> {
    match crate::yaml11::ambiguous_scalars(text)
        .into_iter()
        .find(|scalar| scalar.is_oversized())
    {
        Some(scalar) => Err(InventoryError::OversizedNumber {
            document: scalar.document,
            rule: scalar.rule(true),
            field: scalar.field,
        }),
        None => Ok(()),
    }
}

fn from_yaml_documents(text: &str) -> Result<Inventory, InventoryError> {
    let syntax = |error: serde_yaml::Error| InventoryError::Syntax(error.to_string());
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        match serde_yaml::Value::deserialize(document).map_err(syntax)? {
            serde_yaml::Value::Null => {}
            value => documents.push(value),
        }
    }
    let chosen = match documents.len() {
        0 => return Ok(Inventory::default()),
        1 => documents.remove(0),
        _ => {
            let mut inventories: Vec<_> = documents
                .into_iter()
                .filter(|d| d.get("kind").and_then(|k| k.as_str()) == Some(INVENTORY_KIND))
                .collect();
            if inventories.len() != 1 {
                return Err(InventoryError::NotOneInventory(inventories.len()));
            }
            inventories.remove(0)
        }
    };
    serde_yaml::from_value(chosen).map_err(syntax)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(cloud: &str, id: &str) -> InventoryResource {
        InventoryResource {
            cloud: cloud.to_string(),
            region: "cn-hangzhou".to_string(),
            resource_type: "apiGroup".to_string(),
            id: id.to_string(),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn accepts_a_document_header_and_rejects_another_kind() {
        let yaml = "apiVersion: emulator.tagbinder.io/v1alpha1\nkind: CloudInventory\n\
                    accounts: [{accessKeyId: a, accessKeySecret: s}]\n";
        let inventory: Inventory = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(inventory.accounts[0].access_key_id, "a");
        // NB: the CLI reads inventories strictly (serde_ignored); the header must not count
        // as unknown fields.
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        let mut unknown = Vec::new();
        let strict: Inventory =
            serde_ignored::deserialize(value, |path| unknown.push(path.to_string())).unwrap();
        assert_eq!(strict, inventory);
        assert!(unknown.is_empty(), "{unknown:?}");
        let wrong = "kind: TagProvider\naccounts: []\n";
        let error = serde_yaml::from_str::<Inventory>(wrong).unwrap_err();
        assert!(error.to_string().contains("TagProvider"), "{error}");
    }

    #[test]
    fn picks_the_inventory_out_of_a_manifest_set() {
        let yaml = "apiVersion: tagbinder.io/v1alpha1\nkind: TagProvider\nmetadata: {name: p}\n---\n\
                    apiVersion: emulator.tagbinder.io/v1alpha1\nkind: CloudInventory\n\
                    resources: [{cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g1, tags: {env: dev}}]\n";
        let inventory = from_yaml_documents(yaml).unwrap();
        assert_eq!(inventory.resources.len(), 1);
        assert_eq!(inventory.resources[0].tags["env"], "dev");
        assert!(from_yaml_documents("kind: A\n---\nkind: B\n").is_err());
    }

    #[test]
    fn loads_json_and_yaml_files_and_names_the_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let json_path = dir.path().join("inventory.json");
        let json = r#"{"accounts": [{"accessKeyId": "a", "accessKeySecret": "s"}],
                       "resources": [{"cloud": "alibaba", "region": "", "type": "app", "id": "x"}]}"#;
        std::fs::write(&json_path, json).unwrap();
        let loaded = Inventory::load(&json_path).unwrap();
        assert_eq!(loaded.resources[0].id, "x");
        let yaml_path = dir.path().join("inventory.yaml");
        std::fs::write(
            &yaml_path,
            "resources: [{cloud: aws, region: r, type: t, id: i}]\n",
        )
        .unwrap();
        let error = Inventory::load(&yaml_path).unwrap_err().to_string();
        assert!(
            error.contains("inventory.yaml") && error.contains("aws"),
            "{error}"
        );
    }

    #[test]
    fn account_uids_are_stable_sixteen_digit_numbers() {
        let uid = account_uid("LTAI-key");
        assert_eq!(uid, account_uid("LTAI-key"));
        assert_ne!(uid, account_uid("other-key"));
        assert_eq!(uid.len(), 16);
        assert!(uid.bytes().all(|b| b.is_ascii_digit()), "{uid}");
        let accounts = Accounts::new(&[Account {
            access_key_id: "LTAI-key".into(),
            access_key_secret: "s".into(),
        }]);
        assert_eq!(accounts.uid("LTAI-key"), Some(uid));
        assert_eq!(accounts.uid("unknown"), None);
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_shown() {
        let yaml = "accounts: [{accessKeyId: a, accessKeySecret: 918273645546372819}]\n";
        // NB: as read, through a YAML value (a plain scalar read straight into a String is
        // taken as text).
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        let error = serde_yaml::from_value::<Inventory>(value)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("accessKeySecret must be a string"),
            "{error}"
        );
        assert!(!error.contains("918273645546372819"), "{error}");
        let json =
            r#"{"accounts": [{"accessKeyId": "a", "accessKeySecret": [918273645546372819]}]}"#;
        let error = serde_json::from_str::<Inventory>(json)
            .unwrap_err()
            .to_string();
        assert!(!error.contains("918273645546372819"), "{error}");
    }

    #[test]
    fn reading_is_bounded_in_bytes_and_nesting() {
        if Path::new("/dev/zero").exists() {
            let error = Inventory::load(Path::new("/dev/zero"))
                .unwrap_err()
                .to_string();
            assert!(error.contains("larger than 16.0 MiB"), "{error}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.yaml");
        std::fs::write(&path, format!("resources: {}", "[".repeat(100_000))).unwrap();
        let error = Inventory::load(&path).unwrap_err().to_string();
        assert!(error.contains("deeper than 64"), "{error}");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let account = Account {
            access_key_id: "id".to_string(),
            access_key_secret: "very-secret".to_string(),
        };
        assert!(!format!("{account:?}").contains("very-secret"));
    }

    #[test]
    fn validation_rejects_duplicates_and_unknown_clouds() {
        assert!(
            validate_resources(&[resource("alibaba", "g1"), resource("jdcloud", "g1")]).is_ok()
        );
        let twice = validate_resources(&[resource("alibaba", "g1"), resource("alibaba", "g1")]);
        assert_eq!(
            twice.unwrap_err(),
            InventoryError::Twice("alibaba/apiGroup/g1".to_string())
        );
        let unknown = validate_resources(&[resource("aws", "g1")]);
        assert!(unknown.unwrap_err().to_string().contains("aws"));
        let accounts = Inventory {
            accounts: vec![
                Account {
                    access_key_id: "a".into(),
                    access_key_secret: "x".into(),
                },
                Account {
                    access_key_id: "a".into(),
                    access_key_secret: "y".into(),
                },
            ],
            resources: Vec::new(),
        };
        assert!(accounts.validate().is_err());
    }
}
