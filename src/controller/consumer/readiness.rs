//! Whether a Consumer's workers are up, pure: a Consumer is Ready only with its minimum of workers ready,
//! so a Deployment in a crash loop is not reported healthy to `kubectl get`, Argo CD or `kubectl wait`.
//! Otherwise it is `Progressing` (a rollout or a scale-up within its deadline) or `Degraded` (the
//! Deployment passed its progress deadline or cannot create pods), with the Deployment's own reason.

use k8s_openapi::api::apps::v1::Deployment;

use crate::controller::status::NotReady;

/// Ready=False: workers are starting and the Deployment is within its progress deadline.
pub const PROGRESSING: &str = "Progressing";
/// Ready=False: the Deployment gave up (`ProgressDeadlineExceeded`) or cannot create pods
/// (`ReplicaFailure`).
pub const DEGRADED: &str = "Degraded";
/// Ready=False: the rollout is complete but the workers fail their readiness probe: a worker's
/// `/readyz` says why (a dead letter it cannot send stalls its partition).
pub const WORKERS_NOT_READY: &str = "WorkersNotReady";
/// What the message adds when the workers run but are not ready.
const NOT_READY_HINT: &str = "; the pods run but fail their readiness probe: their /readyz and tributary_worker_stalled_partitions say why (e.g. a dead letter that cannot be sent)";

/// The workers that must be ready: none when scaled to zero, else `minReplicas` (at least one) but never
/// more than are wanted now.
pub fn required(wanted: i32, min_replicas: i32) -> i32 {
    if wanted <= 0 {
        0
    } else {
        min_replicas.max(1).min(wanted)
    }
}

/// What the Deployment says of the workers.
pub struct Workers {
    /// Ready replicas.
    pub ready: i32,
    /// The Ready condition's message when ready.
    pub message: String,
    /// Why the Consumer is not Ready, if it is not.
    pub not_ready: Option<NotReady>,
}

/// The workers of `deployment` (named `name`), `wanted` replicas of which at least
/// [`required`]`(wanted, min_replicas)` must be ready.
pub fn workers(deployment: &Deployment, wanted: i32, min_replicas: i32, name: &str) -> Workers {
    let ready = deployment
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    Workers {
        ready,
        message: format!("{ready}/{wanted} workers ready (Deployment {name})"),
        not_ready: not_ready(deployment, required(wanted, min_replicas), wanted, name),
    }
}

/// `None` when at least `required` workers are ready, else why not, from the Deployment's conditions.
pub fn not_ready(deployment: &Deployment, required: i32, wanted: i32, name: &str) -> Option<NotReady> {
    let status = deployment.status.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    if ready >= required {
        return None;
    }
    let conditions = status.conditions.unwrap_or_default();
    let find = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    let failure = find("ReplicaFailure").filter(|c| c.status == "True");
    let deadline = find("Progressing").filter(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    // A finished rollout with too few ready pods: they run, but say they are not ready.
    let rolled_out = find("Progressing").filter(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
    let (reason, cause) = match (failure, deadline, rolled_out) {
        (Some(c), _, _) | (None, Some(c), _) => (DEGRADED, Some(c)),
        (None, None, Some(_)) => (WORKERS_NOT_READY, find("Available")),
        (None, None, None) => (PROGRESSING, find("Available").or_else(|| find("Progressing"))),
    };
    let detail = cause
        .map(|c| {
            format!(
                ": {} ({})",
                c.message.as_deref().unwrap_or_default(),
                c.reason.as_deref().unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let hint = if reason == WORKERS_NOT_READY {
        NOT_READY_HINT
    } else {
        ""
    };
    Some(NotReady {
        reason,
        message: format!(
            "{ready}/{wanted} workers ready, at least {required} needed (Deployment {name}){detail}{hint}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

    use super::*;

    fn deployment(ready: i32, conditions: &[(&str, &str, &str)]) -> Deployment {
        Deployment {
            status: Some(DeploymentStatus {
                ready_replicas: Some(ready),
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(type_, status, reason)| DeploymentCondition {
                            type_: (*type_).to_owned(),
                            status: (*status).to_owned(),
                            reason: Some((*reason).to_owned()),
                            message: Some(format!("{type_} says {reason}")),
                            ..DeploymentCondition::default()
                        })
                        .collect(),
                ),
                ..DeploymentStatus::default()
            }),
            ..Deployment::default()
        }
    }

    #[test]
    fn the_minimum_is_min_replicas_but_at_least_one_and_at_most_what_is_wanted() {
        assert_eq!(required(0, 0), 0, "scaled to zero");
        assert_eq!(required(3, 0), 1);
        assert_eq!(required(3, 2), 2);
        assert_eq!(required(1, 2), 1);
    }

    #[test]
    fn enough_ready_workers_make_it_ready() {
        assert_eq!(not_ready(&deployment(1, &[]), 1, 3, "w"), None);
        assert_eq!(not_ready(&Deployment::default(), 0, 0, "w"), None);
    }

    #[test]
    fn a_crash_loop_is_progressing_then_degraded_with_the_deployments_reason() {
        let starting = deployment(
            0,
            &[
                ("Available", "False", "MinimumReplicasUnavailable"),
                ("Progressing", "True", "ReplicaSetUpdated"),
            ],
        );
        let waiting = not_ready(&starting, 1, 1, "w").unwrap();
        assert_eq!(waiting.reason, PROGRESSING);
        assert!(
            waiting
                .message
                .starts_with("0/1 workers ready, at least 1 needed (Deployment w)")
        );
        assert!(
            waiting.message.contains("MinimumReplicasUnavailable"),
            "{}",
            waiting.message
        );

        let stuck = deployment(
            0,
            &[
                ("Available", "False", "MinimumReplicasUnavailable"),
                ("Progressing", "False", "ProgressDeadlineExceeded"),
            ],
        );
        let degraded = not_ready(&stuck, 1, 1, "w").unwrap();
        assert_eq!(degraded.reason, DEGRADED);
        assert!(degraded.message.contains("ProgressDeadlineExceeded"));

        let failing = deployment(0, &[("ReplicaFailure", "True", "FailedCreate")]);
        assert_eq!(not_ready(&failing, 1, 1, "w").unwrap().reason, DEGRADED);
    }

    #[test]
    fn rolled_out_workers_that_fail_readiness_say_so() {
        let unready = deployment(
            0,
            &[
                ("Available", "False", "MinimumReplicasUnavailable"),
                ("Progressing", "True", "NewReplicaSetAvailable"),
            ],
        );
        let not = not_ready(&unready, 1, 1, "w").unwrap();
        assert_eq!(not.reason, WORKERS_NOT_READY);
        assert!(not.message.contains("/readyz"), "{}", not.message);
        assert!(
            not.message.contains("MinimumReplicasUnavailable"),
            "{}",
            not.message
        );
    }
}
