//! The naming and limit rules of SNS, SQS, Event Hubs, Storage Queues, Cosmos DB, Resource Manager and
//! tags that the CRDs enforce (schema and CEL; docs/admission-rules.md lists each with its source): objects
//! that break one, and objects right at each limit, which must be accepted.

/// (what is wrong, kind, spec as YAML, text the API server's message must contain).
pub type Case = (&'static str, &'static str, String, &'static str);

/// `n` letters.
fn long(n: usize) -> String {
    "a".repeat(n)
}

/// `n` tags `k0: v`, `k1: v`, ... as a YAML flow map.
fn tags(n: usize) -> String {
    let entries: Vec<String> = (0..n).map(|i| format!("k{i}: v")).collect();
    format!("{{{}}}", entries.join(", "))
}

fn case(what: &'static str, kind: &'static str, spec: impl Into<String>, expected: &'static str) -> Case {
    (what, kind, spec.into(), expected)
}

/// Objects that break a cloud's naming or limit rule.
pub fn invalid() -> Vec<Case> {
    let mut cases = topic_and_queue();
    cases.extend(device_stream());
    cases.extend(consumer_and_dead_letter());
    cases
}

fn topic_and_queue() -> Vec<Case> {
    vec![
        case(
            "topic name of 257",
            "Topic",
            format!("aws: {{name: {}}}", long(257)),
            "spec.aws.name",
        ),
        case(
            "display name of 101",
            "Topic",
            format!("aws: {{displayName: {}}}", long(101)),
            "spec.aws.displayName",
        ),
        case(
            "topic tag key aws:",
            "Topic",
            "aws: {}\ntags: {'aws:owner': x}",
            "SNS tag keys are 1 to 128",
        ),
        case(
            "topic tag key of 129",
            "Topic",
            format!("aws: {{}}\ntags: {{{}: x}}", long(129)),
            "SNS tag keys are 1 to 128",
        ),
        case(
            "topic tag value with #",
            "Topic",
            "aws: {}\ntags: {team: 'a#b'}",
            "may hold only Unicode letters",
        ),
        case(
            "topic tag value of 257",
            "Topic",
            format!("aws: {{}}\ntags: {{team: {}}}", long(257)),
            "spec.tags",
        ),
        case(
            "topic tag claiming ownership",
            "Topic",
            "aws: {}\ntags: {'tributary.dev/namespace': x}",
            "ownership tags",
        ),
        case(
            "47 topic tags",
            "Topic",
            format!("aws: {{}}\ntags: {}", tags(47)),
            "spec.tags",
        ),
        case(
            "topic kms key of 2049",
            "Topic",
            format!("aws: {{kmsMasterKeyId: {}}}", long(2049)),
            "spec.aws.kmsMasterKeyId",
        ),
        case(
            "queue name of 81",
            "Queue",
            format!("aws: {{name: {}}}", long(81)),
            "spec.aws.name",
        ),
        case(
            "fifo queue name of 81",
            "Queue",
            format!("aws: {{name: {}.fifo, fifo: true}}", long(76)),
            "spec.aws.name",
        ),
        case(
            "queue name with a dot",
            "Queue",
            "aws: {name: jobs.v2}",
            "spec.aws.name",
        ),
        case(
            "standard queue named .fifo",
            "Queue",
            "aws: {name: jobs.fifo}",
            "must end with '.fifo' exactly",
        ),
        case(
            "negative delay",
            "Queue",
            "aws: {delaySeconds: -1}",
            "spec.aws.delaySeconds",
        ),
        case(
            "message size below 1 KiB",
            "Queue",
            "aws: {maximumMessageSizeBytes: 1023}",
            "spec.aws.maximumMessageSizeBytes",
        ),
        case(
            "negative visibility",
            "Queue",
            "aws: {visibilityTimeoutSeconds: -1}",
            "spec.aws.visibilityTimeoutSeconds",
        ),
        case(
            "queue tag key aws:",
            "Queue",
            "aws: {}\ntags: {'aws:cost': x}",
            "SQS tag keys are 1 to 128",
        ),
        case(
            "queue tag value with !",
            "Queue",
            "aws: {}\ntags: {team: 'a!'}",
            "SQS tag keys and values",
        ),
        case(
            "azure queue tag with /",
            "Queue",
            "provider: azure\nazure: {storageAccount: acct}\ntags: {'a/b': x}",
            "Azure tag names",
        ),
        case(
            "storage account with capitals",
            "Queue",
            "provider: azure\nazure: {storageAccount: Acct1}",
            "spec.azure.storageAccount",
        ),
        case(
            "storage account of 25",
            "Queue",
            format!("provider: azure\nazure: {{storageAccount: {}}}", long(25)),
            "spec.azure.storageAccount",
        ),
        case(
            "storage account of 2",
            "Queue",
            "provider: azure\nazure: {storageAccount: ab}",
            "spec.azure.storageAccount",
        ),
        case(
            "storage queue with --",
            "Queue",
            "provider: azure\nazure: {storageAccount: acct, name: a--b}",
            "spec.azure.name",
        ),
        case(
            "storage queue ending with -",
            "Queue",
            "provider: azure\nazure: {storageAccount: acct, name: jobs-}",
            "spec.azure.name",
        ),
        case(
            "storage queue name of 2",
            "Queue",
            "provider: azure\nazure: {storageAccount: acct, name: ab}",
            "spec.azure.name",
        ),
        case(
            "storage queue name of 64",
            "Queue",
            format!(
                "provider: azure\nazure: {{storageAccount: acct, name: {}}}",
                long(64)
            ),
            "spec.azure.name",
        ),
        case(
            "azure visibility above 7 days",
            "Queue",
            "provider: azure\nazure: {storageAccount: acct, visibilityTimeoutSeconds: 604801, messageTtlSeconds: -1}",
            "spec.azure.visibilityTimeoutSeconds",
        ),
        case(
            "azure visibility not below ttl",
            "Queue",
            "provider: azure\nazure: {storageAccount: acct, visibilityTimeoutSeconds: 60, messageTtlSeconds: 60}",
            "must be less than spec.azure.messageTtlSeconds",
        ),
    ]
}

fn device_stream() -> Vec<Case> {
    let ds = |azure: &str| format!("azure: {{namespace: devices-ns, {azure}}}");
    let created = |azure: &str| {
        format!("azure: {{namespace: devices-ns, createNamespace: true, location: westeurope, {azure}}}")
    };
    vec![
        case(
            "subscription id not a GUID",
            "DeviceStream",
            ds("subscriptionId: zzzzzzzz-0000-0000-0000-000000000000"),
            "spec.azure.subscriptionId",
        ),
        case(
            "resource group ending with .",
            "DeviceStream",
            ds("resourceGroup: 'rg.'"),
            "spec.azure.resourceGroup",
        ),
        case(
            "resource group of 91",
            "DeviceStream",
            ds(&format!("resourceGroup: {}", long(91))),
            "spec.azure.resourceGroup",
        ),
        case(
            "resource group with /",
            "DeviceStream",
            ds("resourceGroup: 'a/b'"),
            "spec.azure.resourceGroup",
        ),
        case(
            "namespace of 5",
            "DeviceStream",
            "azure: {namespace: abcde}",
            "spec.azure.namespace",
        ),
        case(
            "namespace of 51",
            "DeviceStream",
            format!("azure: {{namespace: {}}}", long(51)),
            "spec.azure.namespace",
        ),
        case(
            "namespace starting with a digit",
            "DeviceStream",
            "azure: {namespace: 1devices}",
            "spec.azure.namespace",
        ),
        case(
            "namespace ending with -",
            "DeviceStream",
            "azure: {namespace: devices-}",
            "spec.azure.namespace",
        ),
        case(
            "hub name ending with .",
            "DeviceStream",
            ds("hubName: 'hub.'"),
            "spec.azure.hubName",
        ),
        case(
            "hub name of 257",
            "DeviceStream",
            ds(&format!("hubName: {}", long(257))),
            "spec.azure.hubName",
        ),
        case(
            "consumer group with a space",
            "DeviceStream",
            ds("consumerGroups: ['a b']"),
            "spec.azure.consumerGroups",
        ),
        case(
            "consumer group ending with _",
            "DeviceStream",
            ds("consumerGroups: [group_]"),
            "spec.azure.consumerGroups",
        ),
        case(
            "consumer group of 51",
            "DeviceStream",
            ds(&format!("consumerGroups: [{}]", long(51))),
            "spec.azure.consumerGroups",
        ),
        case(
            "repeated consumer group",
            "DeviceStream",
            ds("consumerGroups: [a, a]"),
            "spec.azure.consumerGroups",
        ),
        case(
            "created namespace without location",
            "DeviceStream",
            "azure: {namespace: devices-ns, createNamespace: true}",
            "spec.azure.location is required",
        ),
        case(
            "33 partitions in a created namespace",
            "DeviceStream",
            created("partitions: 33"),
            "spec.azure.partitions",
        ),
        case(
            "169 h retention in a created namespace",
            "DeviceStream",
            created("retentionHours: 169"),
            "spec.azure.retentionHours",
        ),
        case(
            "20 consumer groups in a created namespace",
            "DeviceStream",
            created(&format!(
                "consumerGroups: [{}]",
                (0..20).map(|i| format!("g{i}")).collect::<Vec<_>>().join(", ")
            )),
            "spec.azure.consumerGroups",
        ),
        case(
            "1025 partitions",
            "DeviceStream",
            ds("partitions: 1025"),
            "spec.azure.partitions",
        ),
        case(
            "2161 h retention",
            "DeviceStream",
            ds("retentionHours: 2161"),
            "spec.azure.retentionHours",
        ),
        case(
            "stream tag with <",
            "DeviceStream",
            "azure: {namespace: devices-ns}\ntags: {'a<b': x}",
            "Azure tag names",
        ),
    ]
}

fn consumer_and_dead_letter() -> Vec<Case> {
    let device = |sink: &str| {
        format!("source: {{deviceStreamRef: {{name: s}}}}\nprocessor: device\nsink: {{cosmos: {sink}}}")
    };
    vec![
        case(
            "consumer group with a space",
            "Consumer",
            "source: {deviceStreamRef: {name: s, consumerGroup: 'a b'}}\ncontainer: {image: w}",
            "spec.source.deviceStreamRef.consumerGroup",
        ),
        case(
            "cosmos database with /",
            "Consumer",
            device("{endpoint: 'https://a/', database: 'a/b', container: c}"),
            "spec.sink.cosmos.database",
        ),
        case(
            "cosmos container with #",
            "Consumer",
            device("{endpoint: 'https://a/', database: d, container: 'c#1'}"),
            "spec.sink.cosmos.container",
        ),
        case(
            "cosmos database of 256",
            "Consumer",
            device(&format!(
                "{{endpoint: 'https://a/', database: {}, container: c}}",
                long(256)
            )),
            "spec.sink.cosmos.database",
        ),
        case(
            "cosmos account with capitals",
            "Consumer",
            device("{endpoint: 'https://MyAcct.documents.azure.com:443/', database: d, container: c}"),
            "Cosmos DB account name",
        ),
        case(
            "cosmos account of 45",
            "Consumer",
            device(&format!(
                "{{endpoint: 'https://{}.documents.azure.com/', database: d, container: c}}",
                long(45)
            )),
            "Cosmos DB account name",
        ),
        case(
            "table with /",
            "Consumer",
            "source: {queueRef: {name: q}}\ncontainer: {image: w}\nsink: {table: 'a/b'}",
            "spec.sink.table",
        ),
        case(
            "dead letter name of 81",
            "DeadLetter",
            format!("aws: {{name: {}}}", long(81)),
            "spec.aws.name",
        ),
        case(
            "standard dead letter named .fifo",
            "DeadLetter",
            "aws: {name: dlq.fifo}",
            "must end with '.fifo' exactly",
        ),
        case(
            "dead letter retention above 14 days",
            "DeadLetter",
            "aws: {messageRetentionSeconds: 1209601}",
            "spec.aws.messageRetentionSeconds",
        ),
        case(
            "dead letter retention below a minute",
            "DeadLetter",
            "aws: {messageRetentionSeconds: 59}",
            "spec.aws.messageRetentionSeconds",
        ),
        case(
            "redrive rate 0",
            "DeadLetter",
            "aws: {}\nredrive: {id: r1, maxMessagesPerSecond: 0}",
            "spec.redrive.maxMessagesPerSecond",
        ),
        case(
            "dead letter tag key aws:",
            "DeadLetter",
            "aws: {}\ntags: {'aws:x': y}",
            "SQS tag keys are 1 to 128",
        ),
        case(
            "azure dead letter tag with %",
            "DeadLetter",
            "provider: azure\nazure: {storageAccount: acct}\ntags: {'a%b': x}",
            "Azure tag names",
        ),
        case(
            "azure dead letter name with _",
            "DeadLetter",
            "provider: azure\nazure: {storageAccount: acct, name: dead_letters}",
            "spec.azure.name",
        ),
    ]
}

/// (what is at its limit, kind, spec as YAML): each must be accepted.
pub fn valid() -> Vec<(&'static str, &'static str, String)> {
    let ds = |azure: String| format!("azure: {{namespace: devices-ns, {azure}}}");
    let created = |azure: &str| {
        format!("azure: {{namespace: devices-ns, createNamespace: true, location: westeurope, {azure}}}")
    };
    let groups = |n: usize| (0..n).map(|i| format!("g{i}")).collect::<Vec<_>>().join(", ");
    vec![
        ("topic name of 256", "Topic", format!("aws: {{name: {}}}", long(256))),
        ("fifo topic name of 256", "Topic", format!("aws: {{name: {}.fifo, fifo: true}}", long(251))),
        ("46 tags, key of 128, value of 256", "Topic", format!("aws: {{}}\ntags: {{{}: {}, {}}}", long(128), long(256), &tags(45)[1..tags(45).len() - 1])),
        ("unicode tag with every allowed symbol and an empty value", "Topic", "aws: {displayName: ''}\ntags: {'Kostenstelle Ö': 'a b:c/d=e+f-g@h_i.j', leer: ''}".into()),
        ("queue name of 80", "Queue", format!("aws: {{name: {}}}", long(80))),
        ("fifo queue name of 80", "Queue", format!("aws: {{name: {}.fifo, fifo: true}}", long(75))),
        ("queue at every upper limit", "Queue", "aws: {visibilityTimeoutSeconds: 43200, messageRetentionSeconds: 1209600, delaySeconds: 900, receiveWaitTimeSeconds: 20, maximumMessageSizeBytes: 1048576}\ndeadLetter: {ref: {name: dlq}, maxReceiveCount: 1000}".into()),
        ("queue at every lower limit", "Queue", "aws: {visibilityTimeoutSeconds: 0, messageRetentionSeconds: 60, delaySeconds: 0, receiveWaitTimeSeconds: 0, maximumMessageSizeBytes: 1024}\ndeadLetter: {ref: {name: dlq}, maxReceiveCount: 1}".into()),
        ("storage account of 24, queue name of 63", "Queue", format!("provider: azure\nazure: {{storageAccount: {}, name: {}}}", long(24), long(63))),
        ("storage account of 3, queue name of 3 with a dash", "Queue", "provider: azure\nazure: {storageAccount: abc, name: a-b}".into()),
        ("azure visibility of 7 days, never expiring", "Queue", "provider: azure\nazure: {storageAccount: acct, visibilityTimeoutSeconds: 604800, messageTtlSeconds: -1}".into()),
        ("azure tag key with unicode and symbols", "Queue", "provider: azure\nazure: {storageAccount: acct}\ntags: {'Kosten-Stelle.Ü:1': 'a/b'}".into()),
        ("namespace of 6", "DeviceStream", "azure: {namespace: abcdef}".into()),
        ("namespace of 50, hub of 256", "DeviceStream", format!("azure: {{namespace: {}, hubName: {}}}", long(50), long(256))),
        ("1024 partitions, 2160 h, 999 groups in an existing namespace", "DeviceStream", ds(format!("partitions: 1024, retentionHours: 2160, consumerGroups: [{}]", groups(999)))),
        ("32 partitions, 168 h, 19 groups in a created namespace", "DeviceStream", created(&format!("partitions: 32, retentionHours: 168, consumerGroups: [{}]", groups(19)))),
        ("consumer group of 50 with . - _", "DeviceStream", ds(format!("consumerGroups: [a.b-c_{}]", long(44)))),
        ("GUID in capitals, resource group with () and unicode", "DeviceStream", ds("subscriptionId: 0A1B2C3D-0000-4000-8000-00000000000F, resourceGroup: 'Gruppe-(Prod)_ü.1'".into())),
        ("resource group of 90", "DeviceStream", ds(format!("resourceGroup: {}", long(90)))),
        ("$Default consumer group, cosmos account of 44", "Consumer", format!("source: {{deviceStreamRef: {{name: s, consumerGroup: $Default}}}}\nprocessor: device\nsink: {{cosmos: {{endpoint: 'https://{}.documents.azure.com:443/', database: 'Telemetry DB', container: c}}}}", long(44))),
        ("emulator endpoint, database of 255", "Consumer", format!("source: {{deviceStreamRef: {{name: s, consumerGroup: readers.v-1_x}}}}\nprocessor: device\nsink: {{cosmos: {{endpoint: 'https://127.0.0.1:8081/', database: {}, container: c}}}}", long(255))),
        ("container at every limit: port 65535, 64 args, a Secret variable, delivery 900 s x 1000", "Consumer", format!("source: {{queueRef: {{name: q}}}}\ncontainer: {{image: {}, args: [{}], env: [{{name: A.b-c_1, value: ''}}, {{name: T, secretKeyRef: {{name: s, key: k}}}}], port: 65535, path: /events/v1, readinessPath: /, resources: {{limits: {{memory: 64Mi}}}}}}\ndelivery: {{timeoutSeconds: 900, concurrency: 1000, typeAttribute: {}}}", long(512), vec!["x"; 64].join(", "), long(256))),
        ("container at the lower limits: port 1, delivery 1 s x 1", "Consumer", "source: {deviceStreamRef: {name: s}}\ncontainer: {image: w, port: 1}\ndelivery: {timeoutSeconds: 1, concurrency: 1}".into()),
        ("dead letter name of 80, redrive at 500/s", "DeadLetter", format!("aws: {{name: {}, messageRetentionSeconds: 60}}\nredrive: {{id: r1, maxMessagesPerSecond: 500}}", long(80))),
        ("azure dead letter named with 63", "DeadLetter", format!("provider: azure\nazure: {{storageAccount: acct, name: {}}}", long(63))),
    ]
}
