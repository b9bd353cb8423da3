//! From a request path to what it names: a discovery document or a resource (collection,
//! object or subresource), with `/api/v1/namespaces/...` told apart correctly.

/// What a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    Resources { group: String, version: String },
    /// A resource collection, object or subresource.
    Resource(Target),
    /// Anything else.
    Unknown,
}

/// A resource request's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub plural: String,
    /// `None`: cluster-scoped, or a namespaced resource across all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses a path. `core_namespaced` lists the core group's namespaced plurals.
pub fn parse(path: &str, core_namespaced: &[String]) -> Route {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group(group.to_string()),
        ["api", version] => Route::Resources {
            group: String::new(),
            version: version.to_string(),
        },
        ["apis", group, version] => Route::Resources {
            group: group.to_string(),
            version: version.to_string(),
        },
        ["api", version, rest @ ..] => resource("", version, rest, core_namespaced),
        ["apis", group, version, rest @ ..] => resource(group, version, rest, core_namespaced),
        _ => Route::Unknown,
    }
}

fn resource(group: &str, version: &str, rest: &[&str], core_namespaced: &[String]) -> Route {
    let target = |namespace: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Route::Resource(Target {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    // NB: only the core group has a `namespaces` resource; there `namespaces/{x}/{y}` is a
    // namespaced collection when `y` is a namespaced resource, else the Namespace's subresource.
    let namespaced_collection =
        |plural: &str| !group.is_empty() || core_namespaced.iter().any(|p| p == plural);
    match rest {
        [plural] => target(None, plural, None, None),
        ["namespaces", namespace, plural] if namespaced_collection(plural) => {
            target(Some(namespace), plural, None, None)
        }
        ["namespaces", namespace, plural, name] if namespaced_collection(plural) => {
            target(Some(namespace), plural, Some(name), None)
        }
        ["namespaces", namespace, plural, name, sub] if namespaced_collection(plural) => {
            target(Some(namespace), plural, Some(name), Some(sub))
        }
        [plural, name] => target(None, plural, Some(name), None),
        [plural, name, sub] => target(None, plural, Some(name), Some(sub)),
        _ => Route::Unknown,
    }
}
