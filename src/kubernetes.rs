//! `tributary export kubernetes`: a flow as Kubernetes objects, for teams whose home for
//! scheduled work is a cluster. The flow file goes into a ConfigMap mounted in the pod; a
//! scheduled flow becomes a CronJob (one run at a time, its retries as the Job's
//! `backoffLimit`, missed run times as its policy says), a flow run on demand a Job to
//! create each time, and a backfill in parts an Indexed Job (a pod per part) with a Job
//! that commits the parts and one that aborts them. Secrets — the state URL, the vault
//! passphrase — are read from a Secret the objects name and never hold.

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::flow::schedule::{self, Expression};
use crate::flow::{Flow, Missed, PullMode, Trigger};

#[derive(Debug, Clone)]
pub struct KubernetesOptions {
    /// The image with the `tributary` binary (the repository's `Dockerfile` builds one).
    pub image: String,
    pub namespace: Option<String>,
    /// The Secret whose keys become the run's environment: `TRIBUTARY_STATE_URL`,
    /// `TRIBUTARY_VAULT_PASSPHRASE`.
    pub secret: String,
    /// `--param name=value` for every run.
    pub params: IndexMap<String, String>,
    /// A backfill in this many parts instead of the flow's schedule.
    pub partitions: Option<u32>,
    /// The run id of the backfill's parts, commit and abort.
    pub run_id: String,
}

/// The files of one flow: (file name, YAML), and what Kubernetes does differently.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub files: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// `Daily Sales (EU)` → `daily-sales-eu`: an object name Kubernetes takes (52 characters
/// at most, so that a CronJob's Jobs may add their suffix).
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out: String = out.trim_matches('-').chars().take(42).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() { "flow".into() } else { out }
}

/// A `rate(N unit)` as a five-field cron, when one says it exactly.
fn rate_as_cron(minutes: u64) -> Option<String> {
    match minutes {
        m if m < 60 && 60 % m == 0 => Some(format!("*/{m} * * * *")),
        60 => Some("0 * * * *".into()),
        m if m % 60 == 0 && m < 1440 && 1440 % m == 0 => Some(format!("0 */{} * * *", m / 60)),
        1440 => Some("0 0 * * *".into()),
        _ => None,
    }
}

fn yaml(objects: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(object).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// The objects that run `flow` in a cluster.
pub fn manifests(flow: &Flow, options: &KubernetesOptions) -> Result<Manifests, String> {
    let name = format!("tributary-{}", kebab(&flow.name));
    let mut notes = Vec::new();
    let metadata = |object: &str| {
        let mut m = json!({
            "name": object,
            "labels": {
                "app.kubernetes.io/name": "tributary",
                "app.kubernetes.io/instance": name,
            },
        });
        if let Some(ns) = &options.namespace {
            m["namespace"] = json!(ns);
        }
        m
    };
    let flow_json = serde_json::to_string_pretty(flow).map_err(|e| e.to_string())?;
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(&format!("{name}-flow")),
        "data": {"flow.json": flow_json},
    });
    let params: Vec<String> = options
        .params
        .iter()
        .flat_map(|(key, value)| ["--param".to_string(), format!("{key}={value}")])
        .collect();
    let command = |verb: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec![verb.to_string(), "/etc/tributary/flow.json".into()];
        args.extend(params.iter().cloned());
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    if flow.nodes.iter().any(|n| n.kind == "destination.local") {
        notes.push(
            "it writes to a local folder, which is inside the pod and goes with it: mount a volume there, or write to S3 or PostgreSQL".into(),
        );
    }
    // A pod that runs `tributary ARGS`; `env` is added to the container's environment.
    let pod = |args: Vec<String>, env: Vec<Value>, secret_required: bool| {
        let mut environment =
            vec![json!({"name": "TRIBUTARY_HOME", "value": "/var/lib/tributary"})];
        environment.extend(env);
        json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "tributary", "app.kubernetes.io/instance": name}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "run",
                    "image": options.image,
                    "command": ["tributary"],
                    "args": args,
                    "env": environment,
                    // The state URL and the vault passphrase, from the cluster's Secret.
                    "envFrom": [{"secretRef": {"name": options.secret, "optional": !secret_required}}],
                    "volumeMounts": [
                        {"name": "flow", "mountPath": "/etc/tributary", "readOnly": true},
                        {"name": "home", "mountPath": "/var/lib/tributary"},
                    ],
                }],
                "volumes": [
                    {"name": "flow", "configMap": {"name": format!("{name}-flow")}},
                    {"name": "home", "emptyDir": {}},
                ],
            },
        })
    };
    let service = &flow.service;
    let mut files = Vec::new();
    if let Some(parts) = options.partitions {
        files.extend(backfill(
            &name,
            parts,
            &options.run_id,
            config_map,
            &metadata,
            &pod,
            &command,
            service.retries,
        )?);
        let run_id = &options.run_id;
        notes.push(format!(
            "a backfill in {parts} parts, run id {run_id}: `kubectl apply -f {name}-backfill.yaml` starts the parts; when `kubectl wait --for=condition=complete job/{name}-parts` says they are done, `kubectl create -f {name}-commit.yaml` publishes them all; if the Job failed, `kubectl create -f {name}-abort.yaml` removes what its parts staged"
        ));
        notes.push(format!(
            "the parts share what they staged through the state: the Secret `{}` must give TRIBUTARY_STATE_URL a PostgreSQL database",
            options.secret
        ));
        return Ok(Manifests { files, notes });
    }
    let full = matches!(
        &flow.trigger,
        Trigger::Schedule { pull_mode, .. } if *pull_mode == PullMode::Complete
    );
    let args = command("run", if full { &["--full"] } else { &[] });
    let job_spec =
        json!({"backoffLimit": service.retries, "template": pod(args, Vec::new(), false)});
    match &flow.trigger {
        Trigger::Event(_) => {
            return Err(
                "it runs on an event (a file, a webhook, changed records), which only `tributary serve` listens for; give it a schedule to run it in Kubernetes"
                    .into(),
            );
        }
        Trigger::OnDemand => {
            files.push((format!("{name}.yaml"), yaml(&[config_map])?));
            let job = json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "generateName": format!("{name}-"),
                    "labels": {"app.kubernetes.io/name": "tributary", "app.kubernetes.io/instance": name},
                    "namespace": options.namespace,
                },
                "spec": job_spec,
            });
            let mut job = job;
            if options.namespace.is_none() {
                job["metadata"].as_object_mut().unwrap().remove("namespace");
            }
            files.push((format!("{name}-run.yaml"), yaml(&[job])?));
            notes.push(format!(
                "it runs on demand: `kubectl create -f {name}-run.yaml` starts a run"
            ));
        }
        Trigger::Schedule {
            expression,
            time_zone,
            start,
            end,
            ..
        } => {
            let cron = match schedule::parse(expression).map_err(|e| e.to_string())? {
                Expression::Rate { minutes } => rate_as_cron(minutes).ok_or_else(|| {
                    format!("its schedule `{expression}` has no cron form, and a CronJob needs one; write it as a cron")
                })?,
                Expression::Cron(cron) => cron.standard().map_err(|e| {
                    format!("its schedule `{expression}` cannot be said to a CronJob: {e}")
                })?,
            };
            let mut spec = json!({
                "schedule": cron,
                // One run at a time, as the service runs it.
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {"spec": job_spec},
            });
            if let Some(zone) = time_zone.as_deref().filter(|z| *z != "UTC") {
                spec["timeZone"] = json!(zone);
            }
            if service.missed == Missed::Skip {
                // A run time more than a minute late is not started: missed ones are skipped.
                spec["startingDeadlineSeconds"] = json!(60);
            }
            if start.is_some() || end.is_some() {
                notes.push("`start` and `end` are not kept: a CronJob runs until it is suspended or deleted".into());
            }
            if service.deactivate_after > 0 {
                notes.push(
                    "`deactivate_after` is not kept: a CronJob is not suspended after failed runs"
                        .into(),
                );
            }
            notes.push(format!(
                "retries wait Kubernetes' back-off (10 s, doubling), not `retry_after_seconds` ({} s)",
                service.retry_after_seconds
            ));
            let cron_job = json!({
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": metadata(&name),
                "spec": spec,
            });
            files.push((format!("{name}.yaml"), yaml(&[config_map, cron_job])?));
        }
    }
    if !flow.alerts.is_empty() {
        notes.push("`alerts` are sent by `tributary serve` only".into());
    }
    Ok(Manifests { files, notes })
}

/// The backfill's files: the ConfigMap and an Indexed Job of `parts` pods, each running
/// its part (`--partition` from the pod's completion index) and staging its output; the
/// commit Job; the abort Job.
#[allow(clippy::too_many_arguments)]
fn backfill(
    name: &str,
    parts: u32,
    run_id: &str,
    config_map: Value,
    metadata: &dyn Fn(&str) -> Value,
    pod: &dyn Fn(Vec<String>, Vec<Value>, bool) -> Value,
    command: &dyn Fn(&str, &[&str]) -> Vec<String>,
    retries: u32,
) -> Result<Vec<(String, String)>, String> {
    let parts_text = parts.to_string();
    let part_args = command(
        "run",
        &[
            "--full",
            "--partitions",
            &parts_text,
            // Kubernetes puts the variable's value in: the pod's own part.
            "--partition",
            "$(TRIBUTARY_PART)",
            "--run-id",
            run_id,
            "--stage-only",
        ],
    );
    let index = json!({
        "name": "TRIBUTARY_PART",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}},
    });
    let parts_job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(&format!("{name}-parts")),
        "spec": {
            "completionMode": "Indexed",
            "completions": parts,
            "parallelism": parts,
            // A part is tried again on its own; one that fails for good fails the Job, and
            // the commit is never started.
            "backoffLimitPerIndex": retries,
            "maxFailedIndexes": 0,
            "podFailurePolicy": {"rules": [{
                // Exit 2: the flow or the command is wrong, which trying again cannot mend.
                "action": "FailIndex",
                "onExitCodes": {"containerName": "run", "operator": "In", "values": [2]},
            }]},
            "template": pod(part_args, vec![index], true),
        },
    });
    let once = |verb: &str| {
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata(&format!("{name}-{verb}")),
            "spec": {
                "backoffLimit": retries,
                "template": pod(command(verb, &["--run-id", run_id]), Vec::new(), true),
            },
        })
    };
    Ok(vec![
        (
            format!("{name}-backfill.yaml"),
            yaml(&[config_map, parts_job])?,
        ),
        (format!("{name}-commit.yaml"), yaml(&[once("commit")])?),
        (format!("{name}-abort.yaml"), yaml(&[once("abort")])?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rates_fit_kubernetes() {
        assert_eq!(kebab("Daily Sales (EU)"), "daily-sales-eu");
        assert_eq!(kebab("x".repeat(60).as_str()).len(), 42);
        assert_eq!(rate_as_cron(15).as_deref(), Some("*/15 * * * *"));
        assert_eq!(rate_as_cron(60).as_deref(), Some("0 * * * *"));
        assert_eq!(rate_as_cron(360).as_deref(), Some("0 */6 * * *"));
        assert_eq!(rate_as_cron(1440).as_deref(), Some("0 0 * * *"));
        assert_eq!(rate_as_cron(7), None);
        assert_eq!(rate_as_cron(2880), None);
    }
}
