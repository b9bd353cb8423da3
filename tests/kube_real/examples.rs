//! Each example folder is what `kubectl apply -f FOLDER/` takes as it is (issue 26): its
//! Namespaces sort first, and the emulator's inventory lives in a folder of its own, which a
//! plain `-f FOLDER/` does not read (the CLI's `-f` reads it, recursively).

use std::sync::Arc;

use crate::Env;

/// The examples, each applied as a user would apply it to a cluster with the CRDs.
const EXAMPLES: [&str; 6] = [
    "quickstart",
    "selector",
    "observe",
    "partial-failure",
    "tag-service",
    "aws",
];

pub async fn every_example_folder_applies_with_kubectl(env: Arc<Env>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for example in EXAMPLES {
        let folder = root.join(example);
        // NB: the Namespaces for real, then the whole folder as a server-side dry run: every
        // object goes through the schema, the CEL rules and admission, and none is stored,
        // so the suite's controller never sees bindings whose providers reach a real cloud.
        let namespaces = folder.join("00-namespaces.yaml");
        env.cluster
            .kubectl_ok(
                &["apply", "-f", namespaces.to_str().expect("UTF-8 path")],
                None,
            )
            .await;
        let folder = format!("{}/", folder.display());
        let run = env
            .cluster
            .kubectl(
                &[
                    "apply",
                    "--dry-run=server",
                    "--validate=strict",
                    "-f",
                    &folder,
                ],
                None,
            )
            .await;
        assert!(
            run.ok && run.stderr.is_empty(),
            "kubectl apply -f examples/{example}/ fails or warns on a cluster with the CRDs:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        for kind in ["resourcetagbinding", "tagprovider", "secret"] {
            assert!(
                run.stdout.contains(kind),
                "examples/{example}/ applied no {kind}:\n{}",
                run.stdout
            );
        }
    }
}
