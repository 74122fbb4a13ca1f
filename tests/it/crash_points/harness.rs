//! The harness: a run of a scenario against a `tributary controller` process behind the counting proxies
//! of [`common::wire`], restarted once when its crash point kills it, and the sweep over every crash
//! point of a scenario.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use kube::api::{DeleteParams, Patch, PatchParams};

use super::common::{
    self,
    wire::{self, Azure, CrashPoint, Moment, Wire},
};

/// The Azure subscription and resource group of the controller's DeviceStreams (its defaults).
pub const AZURE_SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000c4a54";
pub const AZURE_RESOURCE_GROUP: &str = "crash";

/// How long a step may take to converge, a restart included: a redrive interrupted between its receive
/// and its delete waits for the hidden messages (60 s) before moving them.
pub const BOUND: Duration = Duration::from_secs(90);

/// A check of the system's state: `Err` says what is not (yet) as it should be.
pub type Check = for<'a> fn(&'a Run) -> BoxFuture<'a, Result<(), String>>;

/// One step of a scenario.
pub enum Step {
    /// Server-side apply of every object of a YAML text in the run's namespace (`{storageAccount}` in it
    /// becomes the test bed's storage account).
    Apply(&'static str),
    /// A JSON merge patch of `(kind, name)`'s spec (an update).
    Patch(&'static str, &'static str, &'static str),
    /// Deletes `(kind, name)`.
    Delete(&'static str, &'static str),
    /// Something done behind the controller's back, in the cloud (a queue to adopt, messages to redrive).
    Cloud(Check),
    /// Waits (at most [`BOUND`]) until the check passes: the system converged.
    Converge(&'static str, Check),
}

/// A scenario: what is done, in order, with what it must converge to after each step.
pub struct Scenario {
    pub name: &'static str,
    /// The TenantPolicy spec of its namespace (JSON), when it needs one (adoption).
    pub policy: Option<&'static str>,
    pub steps: &'static [Step],
}

/// One run of a scenario: its namespace, its cloud clients and the wire its controller talks through.
pub struct Run {
    pub client: kube::Client,
    pub namespace: String,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Azurite's queue service, and the run's own Resource Manager fake (its Event Hubs on the broker).
    pub storage: azure_storage_queue::QueueServiceClient,
    pub arm: common::arm_fake::ArmFake,
    /// The run's crash point, and the wire that knows which call it interrupted: an oracle whose rule
    /// depends on where the controller died asks here.
    pub crash: Option<CrashPoint>,
    pub wire: Arc<Wire>,
    /// What the oracles chose to say about the run (the rule that applied), for its output line.
    pub notes: std::sync::Mutex<Vec<String>>,
}

impl Run {
    /// The call the controller was killed at and how (after its response, or instead of forwarding it).
    pub fn interrupted(&self) -> Option<(String, Moment)> {
        let moment = self.crash?.moment;
        Some((self.wire.killed_at()?, moment))
    }

    /// Adds `note` to the run's output line.
    pub fn note(&self, note: String) {
        self.notes.lock().unwrap().push(note);
    }
}

/// How a controller process of a run is started (again, after its crash).
#[derive(Clone)]
struct Launch {
    namespace: String,
    kubeconfig: PathBuf,
    aws: String,
    /// The proxies of Azurite's queue service and of the Resource Manager fake, and the fake itself (its
    /// token endpoint, not proxied: a token is a read).
    storage: String,
    arm: String,
    arm_direct: String,
    dir: PathBuf,
}

impl Launch {
    /// A `tributary controller` watching the run's namespace through the proxies. Each incarnation holds
    /// a Lease of its own: the killed one's Lease would otherwise hold the next back for 15 s, and leader
    /// handover is not what is tested here. Resync stays at its default (300 s), so convergence comes
    /// from the restart and the watches, not from a periodic pass that would hide a lost event.
    fn spawn(&self, incarnation: u32) -> std::process::Child {
        let log = std::fs::File::create(self.dir.join(format!("controller-{incarnation}.log"))).unwrap();
        std::process::Command::new(crate::support::tributary_bin())
            .args(["controller", "--watch-namespace", &self.namespace])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", common::free_port())])
            .args(["--leader-election-namespace", &self.namespace])
            .args(["--lease-name", &format!("crash-{incarnation}")])
            .args(["--identity", &format!("crash-{incarnation}")])
            .args(["--quiet-start-seconds", "0", "--aws-rate-limit", "*=unlimited"])
            .args(["--cluster-id", common::TEST_CLUSTER])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AWS_ENDPOINT_URL", &self.aws)
            .env("AWS_REGION", common::var("AWS_REGION"))
            .env("AWS_ACCESS_KEY_ID", common::var("AWS_ACCESS_KEY_ID"))
            .env("AWS_SECRET_ACCESS_KEY", common::var("AWS_SECRET_ACCESS_KEY"))
            .env("TRIBUTARY_WORKER_IMAGE", "tributary:test")
            .envs(self.azure_env())
            .env("RUST_LOG", "info")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Azure as `make demo` gives it: a managed identity whose token endpoint is the ARM fake's (so the
    /// real credential chain runs), the queue service and Resource Manager through the proxies.
    fn azure_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_QUEUE_ENDPOINT", self.storage.clone()),
            ("TRIBUTARY_AZURE_CREDENTIAL", "managed-identity".to_owned()),
            ("IDENTITY_ENDPOINT", format!("{}/msi/token", self.arm_direct)),
            ("IDENTITY_HEADER", common::arm_fake::IDENTITY_HEADER.to_owned()),
            ("AZURE_RESOURCE_MANAGER_ENDPOINT", self.arm.clone()),
            ("AZURE_SUBSCRIPTION_ID", AZURE_SUBSCRIPTION.to_owned()),
            ("TRIBUTARY_AZURE_RESOURCE_GROUP", AZURE_RESOURCE_GROUP.to_owned()),
            (
                "TRIBUTARY_EVENTHUBS_KAFKA_ENDPOINT",
                common::var("KAFKA_BOOTSTRAP"),
            ),
            ("TRIBUTARY_KAFKA_CA_FILE", common::var("KAFKA_CA_FILE")),
        ]
    }
}

/// What one run came to.
#[derive(Debug)]
pub struct Outcome {
    /// The counted calls, in order.
    pub calls: Vec<String>,
    /// The call after (or before) which the controller was killed, or the event dropped; `None` when the
    /// crash point was not reached (the run made fewer calls, or no event came after it).
    pub killed_at: Option<String>,
    /// `Err`: the step that did not converge and what was wrong.
    pub result: Result<(), String>,
    /// What the oracles said about the run ([`Run::note`]).
    pub notes: Vec<String>,
    pub took: Duration,
}

/// Runs `scenario` once in a namespace of its own, the controller killed at `crash` and restarted.
pub async fn run(client: &kube::Client, scenario: &Scenario, crash: Option<CrashPoint>) -> Outcome {
    let started = Instant::now();
    let namespace = common::namespace(client, &format!("crash-{}", scenario.name)).await;
    if let Some(policy) = scenario.policy {
        common::tenant_policy(client, &namespace, serde_json::from_str(policy).unwrap()).await;
    }
    let dir = std::env::temp_dir().join(&namespace);
    std::fs::create_dir_all(&dir).unwrap();
    let aws = common::aws_config().await;
    let wire = Wire::new(crash);
    let arm = common::arm_fake().await;
    let storage = common::var("AZURE_STORAGE_QUEUE_ENDPOINT");
    let launch = Launch {
        namespace: namespace.clone(),
        kubeconfig: wire::kube_proxy(wire.clone(), client.clone(), &dir).await,
        aws: wire::aws_proxy(wire.clone(), &common::var("AWS_ENDPOINT_URL")).await,
        storage: wire::azure_proxy(wire.clone(), Azure::Storage, &storage).await,
        arm: wire::azure_proxy(wire.clone(), Azure::Arm, &arm.base).await,
        arm_direct: arm.base.clone(),
        dir: dir.clone(),
    };
    wire.set_victim(launch.spawn(0));
    let restarter = tokio::spawn(restart_after_crash(wire.clone(), launch));
    let run = Run {
        client: client.clone(),
        namespace,
        sns: aws_sdk_sns::Client::new(&aws),
        sqs: aws_sdk_sqs::Client::new(&aws),
        storage: common::azure_queue_service(),
        arm,
        crash,
        wire: wire.clone(),
        notes: std::sync::Mutex::default(),
    };
    let result = steps(&run, scenario.steps).await;
    restarter.abort();
    if let Some(mut child) = wire.take_victim() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let result = result.map_err(|e| format!("{e} (logs in {})", dir.display()));
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
        forget(client, &run.namespace).await;
    }
    Outcome {
        calls: wire.calls(),
        killed_at: wire.killed_at().or_else(|| wire.dropped()),
        result,
        notes: run.notes.into_inner().unwrap(),
        took: started.elapsed(),
    }
}

/// Deletes a converged run's namespace (its objects are gone; its Leases and Events go with it) and its
/// TenantPolicy; a failed run's stay for a look (`make testbed-clean` removes them).
async fn forget(client: &kube::Client, namespace: &str) {
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let _ = namespaces.delete(namespace, &DeleteParams::default()).await;
    let policies: kube::Api<tributary::api::TenantPolicy> = kube::Api::all(client.clone());
    let _ = policies.delete(namespace, &DeleteParams::default()).await;
}

/// Starts the next incarnation of the controller as soon as the crash point has killed the first.
async fn restart_after_crash(wire: Arc<Wire>, launch: Launch) {
    wire.killed().await;
    wire.set_victim(launch.spawn(1));
}

async fn steps(run: &Run, steps: &[Step]) -> Result<(), String> {
    for (index, step) in steps.iter().enumerate() {
        step_once(run, step)
            .await
            .map_err(|e| format!("step {}: {e}", index + 1))?;
    }
    Ok(())
}

async fn step_once(run: &Run, step: &Step) -> Result<(), String> {
    match step {
        Step::Apply(yaml) => {
            let params = PatchParams::apply("crash-harness").force();
            let yaml = yaml.replace("{storageAccount}", &common::var("AZURE_STORAGE_ACCOUNT"));
            for object in common::yaml_objects(&yaml) {
                let kind = object.types.as_ref().unwrap().kind.clone();
                let name = kube::ResourceExt::name_any(&object);
                common::tributary_api(&run.client, &run.namespace, &kind)
                    .patch(&name, &params, &Patch::Apply(&object))
                    .await
                    .map_err(|e| format!("applying {kind} {name}: {e}"))?;
            }
            Ok(())
        }
        Step::Patch(kind, name, patch) => {
            let patch: serde_json::Value = serde_json::from_str(patch).unwrap();
            common::tributary_api(&run.client, &run.namespace, kind)
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(|e| format!("patching {kind} {name}: {e}"))
        }
        Step::Delete(kind, name) => common::tributary_api(&run.client, &run.namespace, kind)
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ())
            .map_err(|e| format!("deleting {kind} {name}: {e}")),
        Step::Cloud(action) => action(run).await,
        Step::Converge(what, check) => converge(run, what, *check).await,
    }
}

/// Polls `check` every 250 ms until it passes, or fails with its last complaint after [`BOUND`].
async fn converge(run: &Run, what: &str, check: Check) -> Result<(), String> {
    let deadline = Instant::now() + BOUND;
    loop {
        let error = match check(run).await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        if Instant::now() >= deadline {
            return Err(format!("not converged to {what} within {BOUND:?}: {error}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What a sweep found: one line per crash point, and the failures.
pub struct Sweep {
    pub points: usize,
    /// Crash points whose run made fewer calls than k (timing), so nothing was killed.
    pub not_reached: usize,
    pub converged: usize,
    pub failures: Vec<String>,
    pub took: Duration,
}

/// Runs `scenario` once to count its calls, then once per crash point: after (or before) each counted
/// call, for each of `moments`. Prints one line per point and a summary (for docs/testbed.md).
pub async fn sweep(client: &kube::Client, scenario: &Scenario, moments: &[Moment]) -> Sweep {
    let started = Instant::now();
    let counted = run(client, scenario, None).await;
    if let Err(error) = &counted.result {
        panic!(
            "{}: the scenario does not converge without a crash: {error}",
            scenario.name
        );
    }
    let total = counted.calls.len();
    println!("[{}] {total} counted calls: {:?}", scenario.name, counted.calls);
    let mut sweep = Sweep {
        points: 0,
        not_reached: 0,
        converged: 0,
        failures: Vec::new(),
        took: Duration::ZERO,
    };
    for moment in moments {
        for at in 1..=total {
            let outcome = run(client, scenario, Some(CrashPoint { at, moment: *moment })).await;
            record(&mut sweep, scenario.name, at, total, *moment, &outcome);
        }
    }
    sweep.took = started.elapsed();
    println!(
        "[{}] {}/{} crash points converged ({} not reached) in {:.0?}",
        scenario.name, sweep.converged, sweep.points, sweep.not_reached, sweep.took
    );
    sweep
}

fn record(sweep: &mut Sweep, scenario: &str, at: usize, total: usize, moment: Moment, outcome: &Outcome) {
    sweep.points += 1;
    sweep.not_reached += usize::from(outcome.killed_at.is_none());
    let killed = outcome.killed_at.as_deref().unwrap_or("(not reached)");
    let mut line = format!("[{scenario}] k={at}/{total} {moment:?} {killed}");
    for note in &outcome.notes {
        line.push_str(&format!(" [{note}]"));
    }
    match &outcome.result {
        Ok(()) => {
            sweep.converged += 1;
            println!("{line}: converged in {:.1?}", outcome.took);
        }
        Err(error) => {
            println!("{line}: FAILED: {error}");
            sweep.failures.push(format!("{line}: {error}"));
        }
    }
}
