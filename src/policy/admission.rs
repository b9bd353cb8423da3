//! The admission policy (issue 24): a `ValidatingAdmissionPolicy` whose parameters are the
//! TagPolicies themselves (`paramKind: TagPolicy`, bound with `paramRef.selector: {}`), so
//! that the API server judges every ResourceTagBinding against every `Deny` TagPolicy at
//! `kubectl apply`, with no webhook and nothing to regenerate when a policy changes.
//!
//! It checks what admission can see: the literal `spec.tags` against `allowedValues` and
//! `patterns` (CEL's `matches`, RE2, as the reconciler reads them). A required key may come
//! from `tagsFrom` or the provider's `defaultTags`, which admission cannot render: the
//! reconciler checks those (`PolicyViolation`), so admission never refuses a binding the
//! reconciler would accept.

/// The name of the policy and of its binding.
pub const NAME: &str = "tagbinder-tag-policies";

/// The ValidatingAdmissionPolicy and its binding, as one multi-document YAML.
pub fn manifests() -> String {
    format!(
        r#"# Refuses, at admission, a ResourceTagBinding whose literal spec.tags break a Deny
# TagPolicy (allowedValues, patterns); printed by `tagbinder policy admission`.
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {NAME}
  labels:
    app.kubernetes.io/part-of: tagbinder
spec:
  failurePolicy: Fail
  paramKind:
    apiVersion: tagbinder.io/v1alpha1
    kind: TagPolicy
  matchConstraints:
    resourceRules:
      - apiGroups: ["tagbinder.io"]
        apiVersions: ["v1alpha1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["resourcetagbindings"]
  variables:
    - name: tags
      expression: "has(object.spec.tags) ? object.spec.tags : {{}}"
    - name: governs
      expression: >-
        (!has(params.spec.enforcement) || params.spec.enforcement == 'Deny')
        && (!has(params.spec.match) || !has(params.spec.match.providers)
            || size(params.spec.match.providers) == 0
            || object.spec.providerRef.name in params.spec.match.providers)
        && (!has(params.spec.match) || !has(params.spec.match.resourceTypes)
            || size(params.spec.match.resourceTypes) == 0
            || object.spec.resourceType in params.spec.match.resourceTypes)
        && (!has(params.spec.match) || !has(params.spec.match.namespaceSelector)
            || ((!has(params.spec.match.namespaceSelector.matchLabels)
                 || params.spec.match.namespaceSelector.matchLabels.all(k,
                      has(namespaceObject.metadata.labels) && k in namespaceObject.metadata.labels
                      && namespaceObject.metadata.labels[k] == params.spec.match.namespaceSelector.matchLabels[k]))
                && (!has(params.spec.match.namespaceSelector.matchExpressions)
                 || params.spec.match.namespaceSelector.matchExpressions.all(e,
                      e.operator == 'In'
                        ? (has(namespaceObject.metadata.labels) && e.key in namespaceObject.metadata.labels
                           && namespaceObject.metadata.labels[e.key] in e.values)
                        : e.operator == 'NotIn'
                          ? (!has(namespaceObject.metadata.labels) || !(e.key in namespaceObject.metadata.labels)
                             || !(namespaceObject.metadata.labels[e.key] in e.values))
                          : e.operator == 'Exists'
                            ? (has(namespaceObject.metadata.labels) && e.key in namespaceObject.metadata.labels)
                            : (!has(namespaceObject.metadata.labels) || !(e.key in namespaceObject.metadata.labels))))))
    - name: notAllowed
      expression: >-
        !has(params.spec.rules.allowedValues) ? [] :
        variables.tags.filter(k, k in params.spec.rules.allowedValues
          && !(variables.tags[k] in params.spec.rules.allowedValues[k]))
    - name: notMatching
      expression: >-
        !has(params.spec.rules.patterns) ? [] :
        variables.tags.filter(k, k in params.spec.rules.patterns
          && !variables.tags[k].matches(params.spec.rules.patterns[k]))
  validations:
    - expression: "!variables.governs || size(variables.notAllowed) == 0"
      messageExpression: >-
        'TagPolicy "' + params.metadata.name + '" (Deny): rule allowedValues: '
        + variables.notAllowed.map(k, k + '="' + variables.tags[k] + '"').join(', ')
        + ' not allowed'
      reason: Invalid
    - expression: "!variables.governs || size(variables.notMatching) == 0"
      messageExpression: >-
        'TagPolicy "' + params.metadata.name + '" (Deny): rule patterns: '
        + variables.notMatching.map(k, k + '="' + variables.tags[k] + '" does not match "'
          + params.spec.rules.patterns[k] + '"').join(', ')
      reason: Invalid
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {NAME}
  labels:
    app.kubernetes.io/part-of: tagbinder
spec:
  policyName: {NAME}
  # NB: every TagPolicy is a parameter; with none, every binding is admitted.
  paramRef:
    selector: {{}}
    parameterNotFoundAction: Allow
  validationActions: ["Deny"]
"#
    )
}

#[cfg(test)]
mod tests {
    /// The chart installs a copy (Helm cannot run the binary): the printed text, byte for
    /// byte.
    #[test]
    fn the_charts_copy_matches_the_printed_policy() {
        assert_eq!(
            include_str!("../../deploy/helm/tagbinder/files/admission-policy.yaml"),
            super::manifests(),
            "run `tagbinder policy admission > deploy/helm/tagbinder/files/admission-policy.yaml`"
        );
    }

    #[test]
    fn the_manifests_are_two_yaml_documents_of_the_admission_api() {
        let text = super::manifests();
        let kinds: Vec<String> = serde_yaml::Deserializer::from_str(&text)
            .map(|document| {
                let value: serde_yaml::Value =
                    serde::Deserialize::deserialize(document).expect("YAML");
                assert_eq!(value["apiVersion"], "admissionregistration.k8s.io/v1");
                value["kind"].as_str().expect("kind").to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding"
            ]
        );
    }
}
