//! `tributary export`: flows written for another tool to run — AppFlow, or Apache Airflow.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use indexmap::IndexMap;

use tributary::airflow::{self, DagOptions, Operator};
use tributary::flow::Flow;
use tributary::kubernetes::{self, KubernetesOptions};

use crate::console::{errln, outln};
use crate::{INVALID, appflow_command, parse_param};

#[derive(Subcommand)]
pub enum ExportAction {
    /// A flow as an AppFlow flow: the CreateFlow request (`aws appflow create-flow
    /// --cli-input-json file://OUT.json`), or with `--cloudformation` a template with one
    /// `AWS::AppFlow::Flow` resource. Only flows AppFlow can express: one source, one
    /// destination, transforms that are AppFlow's tasks.
    Appflow {
        flow: PathBuf,
        /// Fill or override a `${name}` placeholder; repeatable.
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Where to write it; standard output when left out.
        #[arg(short = 'o', long = "output", value_name = "OUT.json")]
        output: Option<PathBuf>,
        /// Write a CloudFormation template instead of the CreateFlow request.
        #[arg(long)]
        cloudformation: bool,
        /// Write it even when settings of the flow have no counterpart in AppFlow.
        #[arg(long)]
        allow_partial: bool,
    },
    /// Flows as Apache Airflow 3 DAG files, one per flow (`tributary_<name>.py`): the
    /// schedule, time zone, retries and deactivation of each flow, and a task that runs
    /// `tributary run` on it. Put them in Airflow's DAG folder.
    Airflow {
        #[arg(required = true)]
        flows: Vec<PathBuf>,
        /// The folder to write the DAG files to.
        #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
        output: PathBuf,
        /// Fill or override a `${name}` placeholder in every run; repeatable.
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// What runs the flow: `bash` on Airflow's workers (BashOperator), or `kubernetes`,
        /// a pod of `--image` (KubernetesPodOperator).
        #[arg(long, value_enum, default_value_t = OperatorKind::Bash)]
        operator: OperatorKind,
        /// The image with the `tributary` binary, for `--operator kubernetes`.
        #[arg(long, value_name = "IMAGE")]
        image: Option<String>,
        /// The command that is Tributary where the task runs.
        #[arg(long, value_name = "PATH", default_value = "tributary")]
        tributary: String,
        /// Write a backfill DAG in N parts instead (`tributary_<name>_backfill.py`),
        /// started by hand: the parts run side by side, then one commit publishes them all,
        /// or an abort removes them when a part failed.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
        partitions: Option<u32>,
    },
    /// Flows as Kubernetes objects, a YAML file per flow (`tributary-<name>.yaml`): a
    /// ConfigMap with the flow file and a CronJob on its schedule, or for a flow run on
    /// demand a Job to `kubectl create` each time; with `--partitions`, a backfill in
    /// parts (an Indexed Job) and its commit and abort Jobs. `kubectl apply -f DIR`
    /// installs them.
    Kubernetes {
        #[arg(required = true)]
        flows: Vec<PathBuf>,
        /// The folder to write the files to.
        #[arg(short = 'o', long = "output", value_name = "DIR", default_value = ".")]
        output: PathBuf,
        /// The image with the `tributary` binary (the repository's Dockerfile builds one).
        #[arg(long, value_name = "IMAGE")]
        image: String,
        /// The namespace of the objects; the current one when left out.
        #[arg(long, value_name = "NAME")]
        namespace: Option<String>,
        /// The Secret whose keys are the runs' environment: TRIBUTARY_STATE_URL,
        /// TRIBUTARY_VAULT_PASSPHRASE.
        #[arg(long, value_name = "NAME", default_value = "tributary")]
        secret: String,
        /// Fill or override a `${name}` placeholder in every run; repeatable.
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Write a backfill in N parts instead (`tributary-<name>-backfill.yaml`: an
        /// Indexed Job of N pods, each staging its part; then `-commit.yaml`, a Job that
        /// publishes them all, or `-abort.yaml`, one that removes them). The parts share
        /// the state: the Secret must name a PostgreSQL state.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
        partitions: Option<u32>,
        /// The backfill's run id; `backfill-` and the time of the export when left out.
        #[arg(long, value_name = "ID", requires = "partitions")]
        run_id: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OperatorKind {
    Bash,
    Kubernetes,
}

pub fn export(action: ExportAction) -> anyhow::Result<u8> {
    match action {
        ExportAction::Appflow {
            flow,
            params,
            output,
            cloudformation,
            allow_partial,
        } => appflow_command::export(flow, params, output, cloudformation, allow_partial),
        ExportAction::Airflow {
            flows,
            output,
            params,
            operator,
            image,
            tributary,
            partitions,
        } => {
            let operator = match (operator, image) {
                (OperatorKind::Bash, None) => Operator::Bash,
                (OperatorKind::Bash, Some(_)) => {
                    errln!("--image is for --operator kubernetes");
                    return Ok(INVALID);
                }
                (OperatorKind::Kubernetes, Some(image)) => Operator::Kubernetes { image },
                (OperatorKind::Kubernetes, None) => {
                    errln!(
                        "--operator kubernetes needs --image: the image with the tributary binary"
                    );
                    return Ok(INVALID);
                }
            };
            let options = DagOptions {
                operator,
                tributary,
                params: params.into_iter().collect::<IndexMap<_, _>>(),
                today: jiff::Zoned::now().date(),
                partitions,
            };
            export_airflow(&flows, &output, &options)
        }
        ExportAction::Kubernetes {
            flows,
            output,
            image,
            namespace,
            secret,
            params,
            partitions,
            run_id,
        } => {
            let options = KubernetesOptions {
                image,
                namespace,
                secret,
                params: params.into_iter().collect(),
                partitions,
                run_id: run_id.unwrap_or_else(|| {
                    jiff::Timestamp::now()
                        .strftime("backfill-%Y%m%d-%H%M%S")
                        .to_string()
                }),
            };
            export_kubernetes(&flows, &output, &options)
        }
    }
}

/// Reads each flow file: the flows with their absolute paths, and whether every one read.
fn read_flows(flows: &[PathBuf]) -> anyhow::Result<(Vec<(PathBuf, Flow)>, bool)> {
    let mut read = Vec::new();
    let mut fine = true;
    for path in flows {
        let absolute =
            std::path::absolute(path).with_context(|| format!("cannot find {}", path.display()))?;
        let text = std::fs::read_to_string(&absolute)
            .with_context(|| format!("cannot read {}", path.display()))?;
        match Flow::from_json(&text, &path.display().to_string()) {
            Ok(flow) => read.push((absolute, flow)),
            Err(problem) => {
                errln!("{problem}");
                fine = false;
            }
        }
    }
    Ok((read, fine))
}

/// Writes every flow's objects, or none when any flow cannot run in Kubernetes.
fn export_kubernetes(
    flows: &[PathBuf],
    output: &PathBuf,
    options: &KubernetesOptions,
) -> anyhow::Result<u8> {
    let (read, mut fine) = read_flows(flows)?;
    let mut written = Vec::new();
    let mut names = std::collections::HashMap::new();
    for (path, flow) in &read {
        match kubernetes::manifests(flow, options) {
            Ok(manifests) => {
                for (file, _) in &manifests.files {
                    if let Some(other) = names.insert(file.clone(), path) {
                        errln!(
                            "{} and {} would both be {file}: give the flows different names",
                            other.display(),
                            path.display()
                        );
                        fine = false;
                    }
                }
                written.push((path, manifests));
            }
            Err(why) => {
                errln!("{}: Kubernetes cannot run this flow: {why}", path.display());
                fine = false;
            }
        }
    }
    if !fine {
        errln!("nothing written");
        return Ok(INVALID);
    }
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    for (path, manifests) in written {
        for (name, text) in &manifests.files {
            let file = output.join(name);
            std::fs::write(&file, text)
                .with_context(|| format!("cannot write {}", file.display()))?;
            outln!("{} ({})", file.display(), path.display());
        }
        for note in &manifests.notes {
            outln!("  note: {note}");
        }
    }
    Ok(0)
}

/// Writes a DAG per flow, or none when any flow cannot be one.
fn export_airflow(flows: &[PathBuf], output: &PathBuf, options: &DagOptions) -> anyhow::Result<u8> {
    let (read, fine) = read_flows(flows)?;
    let mut refused = !fine;
    let mut dags = Vec::new();
    for (path, flow) in &read {
        match airflow::dag(flow, path, options) {
            Ok(dag) => dags.push((path, dag)),
            Err(why) => {
                errln!("{}: Airflow cannot run this flow: {why}", path.display());
                refused = true;
            }
        }
    }
    let mut seen = std::collections::HashMap::new();
    for (path, dag) in &dags {
        if let Some(other) = seen.insert(dag.dag_id.clone(), path) {
            errln!(
                "{} and {} would both be the DAG {}: give the flows different names",
                other.display(),
                path.display(),
                dag.dag_id
            );
            refused = true;
        }
    }
    if refused {
        errln!("nothing written");
        return Ok(INVALID);
    }
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    for (path, dag) in dags {
        let file = output.join(&dag.file_name);
        std::fs::write(&file, &dag.text)
            .with_context(|| format!("cannot write {}", file.display()))?;
        outln!(
            "{}: the DAG {} ({})",
            file.display(),
            dag.dag_id,
            path.display()
        );
        for note in &dag.notes {
            outln!("  note: {note}");
        }
    }
    Ok(0)
}
