use super::*;

fn spec(yaml: &str) -> TenantPolicySpec {
    serde_yaml_ng::from_str(yaml).expect("a policy spec")
}

#[test]
fn patterns_match_with_stars_only() {
    assert!(matches("a-*", "a-orders"));
    assert!(matches("a-*", "a-"));
    assert!(!matches("a-*", "b-orders"));
    assert!(!matches("a-*", "a"));
    assert!(matches("orders", "orders"));
    assert!(!matches("orders", "orders2"));
    assert!(matches("*", ""));
    assert!(matches("reg.example.com/team/*:*", "reg.example.com/team/app:1"));
    assert!(!matches("reg.example.com/team/*", "reg.example.com/other/app"));
    assert!(!matches("a*a", "a"));
    assert!(matches("*a*b", "xaxb"));
    // `.` and `?` are not special.
    assert!(!matches("a.b", "axb"));
}

#[test]
fn without_any_policy_the_built_in_defaults_hold() {
    let policy = effective("shop", None, None);
    assert!(!policy.allow_adoption.value);
    assert_eq!(policy.dynamodb_tables.value, ["shop-orders"]);
    assert!(policy.check_table("C", "spec.sink.table", "shop-orders").is_ok());
    assert!(policy.check_table("C", "spec.sink.table", "shop").is_err());
    let error = policy
        .check_table("C", "spec.sink.table", "billing-orders")
        .unwrap_err();
    assert_eq!(error.reason(), "Forbidden");
    let message = error.condition_message();
    assert!(
        message.starts_with("spec.sink.table: \"billing-orders\""),
        "{message}"
    );
    assert!(message.contains("the built-in default"), "{message}");
    // A namespace whose name is a prefix of another's does not reach its tables.
    assert!(
        effective("a", None, None)
            .check_table("C", "f", "a-b-orders")
            .is_err()
    );
    assert!(
        effective("a-b", None, None)
            .check_table("C", "f", "a-b-orders")
            .is_ok()
    );
    assert!(
        policy
            .check_cosmos("C", "https://any.documents.azure.com:443/")
            .is_ok()
    );
    assert!(policy.check_image("C", "example/worker:1").is_err());
    assert!(policy.check_adoption("C", true).is_err());
    assert!(policy.check_adoption("C", false).is_ok());
}

#[test]
fn the_namespace_policy_wins_field_by_field_over_the_cluster_default() {
    let own = spec("allowAdoption: true\ndynamodbTables: [orders]");
    let default = spec("dynamodbTables: ['*']\nimages: ['reg.example.com/*']\nallowAdoption: false");
    let policy = effective("shop", Some(&own), Some(&default));
    assert!(policy.allow_adoption.value);
    assert_eq!(policy.allow_adoption.from, "TenantPolicy shop");
    assert!(policy.check_table("C", "spec.sink.table", "orders").is_ok());
    let error = policy
        .check_table("C", "spec.sink.table", "shop-orders")
        .unwrap_err();
    assert!(error.condition_message().contains("TenantPolicy shop"), "{error}");
    assert_eq!(policy.images.from, "TenantPolicy cluster.default");
    assert!(policy.check_image("C", "reg.example.com/app:1").is_ok());
    let error = policy.check_image("C", "evil.example.com/app:1").unwrap_err();
    assert!(
        error.condition_message().contains("spec.container.image"),
        "{error}"
    );
    assert!(
        error.condition_message().contains("TenantPolicy cluster.default"),
        "{error}"
    );
}

#[test]
fn namespace_placeholders_are_replaced() {
    let default = spec(
        "dynamodbTables: ['{namespace}_*']\ncosmosEndpoints: ['https://{namespace}.documents.azure.com:443']",
    );
    let policy = effective("plant", None, Some(&default));
    assert!(policy.check_table("C", "f", "plant_x").is_ok());
    assert!(policy.check_table("C", "f", "other_x").is_err());
    assert!(
        policy
            .check_cosmos("C", "https://plant.documents.azure.com:443/")
            .is_ok()
    );
    let error = policy
        .check_cosmos("C", "https://other.documents.azure.com:443/")
        .unwrap_err();
    assert!(
        error.condition_message().starts_with("spec.sink.cosmos.endpoint"),
        "{error}"
    );
}

#[test]
fn azure_locations_default_to_the_controllers_own() {
    let defaults = (Some("sub-1"), Some("rg-1"));
    let policy = effective("plant", None, None);
    assert!(policy.check_azure("D", "sub-1", "rg-1", defaults).is_ok());
    let error = policy.check_azure("D", "sub-2", "rg-1", defaults).unwrap_err();
    assert!(error.condition_message().contains("sub-2/rg-1"), "{error}");
    assert!(policy.check_azure("D", "sub-1", "rg-1", (None, None)).is_err());
    let own = spec("azureResourceGroups: [{subscriptionId: sub-2, resourceGroup: 'plant-*'}]");
    let policy = effective("plant", Some(&own), None);
    assert!(policy.check_azure("D", "sub-2", "plant-a", defaults).is_ok());
    assert!(
        policy.check_azure("D", "sub-1", "rg-1", defaults).is_err(),
        "the list replaces the default"
    );
}

#[test]
fn worker_identity_comes_from_the_namespaces_own_policy_only() {
    let none = effective("a", None, None);
    assert!(none.service_account_annotations().is_empty());
    assert!(none.pod_labels().is_empty());
    // An identity in `cluster.default` would be one identity for every namespace: it is not inherited.
    let shared = spec("workerIdentity: {awsRoleArn: 'arn:aws:iam::1:role/all'}");
    let inherited = effective("a", None, Some(&shared));
    assert!(inherited.service_account_annotations().is_empty());
    let own = spec("workerIdentity: {awsRoleArn: 'arn:aws:iam::1:role/a', azureClientId: c-a}");
    let policy = effective("a", Some(&own), Some(&shared));
    let annotations = policy.service_account_annotations();
    assert_eq!(annotations[IRSA_ROLE_ANNOTATION], "arn:aws:iam::1:role/a");
    assert_eq!(annotations[AZURE_CLIENT_ID_ANNOTATION], "c-a");
    assert_eq!(policy.pod_labels()[AZURE_USE_LABEL], "true");
}

#[test]
fn a_consumer_is_checked_on_image_table_and_cosmos() {
    let consumer: Consumer = serde_yaml_ng::from_str(
        "apiVersion: tributary.dev/v1alpha1\nkind: Consumer\nmetadata: {name: c, namespace: b}\n\
         spec:\n  source: {queueRef: {name: q}}\n  container: {image: evil.example.com/x:1}\n  sink: {table: a-orders}\n",
    )
    .unwrap();
    let policy = effective("b", None, None);
    let error = policy
        .check_consumer("C", &consumer, Some("a-orders"))
        .unwrap_err();
    assert!(
        error.condition_message().starts_with("spec.container.image"),
        "{error}"
    );
    let own = spec("images: ['evil.example.com/*']");
    let policy = effective("b", Some(&own), None);
    let error = policy
        .check_consumer("C", &consumer, Some("a-orders"))
        .unwrap_err();
    assert!(
        error
            .condition_message()
            .starts_with("spec.sink.table: \"a-orders\""),
        "{error}"
    );
    assert!(policy.check_consumer("C", &consumer, Some("b-orders")).is_ok());
}
