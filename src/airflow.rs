//! `tributary export airflow`: a flow as a DAG file for Apache Airflow 3 (the `airflow.sdk`
//! API), for teams whose flows outgrow one machine's `tributary serve` and who run Airflow
//! (or Amazon MWAA) already. The DAG's one task runs `tributary run` on the flow: Airflow
//! decides when and where, Tributary what a run does. The flow's trigger and service
//! settings become the DAG's: a `rate` a `timedelta`, a cron the same times in five fields
//! in the flow's time zone, one run at a time, the retries with their doubling delay, and
//! `deactivate_after` Airflow's pause after so many failed runs in a row.

use std::path::Path;

use indexmap::IndexMap;

use crate::flow::schedule::{self, Expression};
use crate::flow::{Flow, Missed, PullMode, Trigger, WhenRunning};

/// What runs the flow in the DAG's task.
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    /// `BashOperator` on the worker: the `tributary` binary and the flow file are there.
    Bash,
    /// `KubernetesPodOperator`: a pod of `image`, the flow file carried in the DAG.
    Kubernetes { image: String },
}

#[derive(Debug, Clone)]
pub struct DagOptions {
    pub operator: Operator,
    /// The command that is Tributary on the workers (`tributary` on the PATH).
    pub tributary: String,
    /// `--param name=value` for every run.
    pub params: IndexMap<String, String>,
    /// The day the DAG's schedule counts from when the flow names none (a rate's start).
    pub today: jiff::civil::Date,
    /// A backfill DAG of this many parts instead: started by hand, one mapped task per
    /// part (`--partitions`), then `tributary commit` when every part staged, or
    /// `tributary abort` when one failed.
    pub partitions: Option<u32>,
}

/// One DAG file.
#[derive(Debug, Clone)]
pub struct Dag {
    pub dag_id: String,
    /// `tributary_<flow name>.py`.
    pub file_name: String,
    pub text: String,
    /// What of the flow Airflow does differently, in words, for the person exporting it.
    pub notes: Vec<String>,
}

/// `Daily Sales (EU)` → `daily_sales_eu`: what a DAG id and a Python file name may hold.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() { "flow".into() } else { out }
}

/// A Python string literal of `text` (JSON's escapes are Python's).
fn py(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// One word for a POSIX shell, quoted unless it needs none.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `pendulum.datetime(…)` of an instant, on the wall clock of `zone`.
fn pendulum_at(at: jiff::Timestamp, zone: &str) -> Result<String, String> {
    let tz = jiff::tz::TimeZone::get(zone).map_err(|e| format!("{zone}: {e}"))?;
    let local = at.to_zoned(tz).datetime();
    Ok(format!(
        "pendulum.datetime({}, {}, {}, {}, {}, {}, tz={})",
        local.year(),
        local.month(),
        local.day(),
        local.hour(),
        local.minute(),
        local.second(),
        py(zone)
    ))
}

/// The DAG for `flow`, read from `flow_path` (absolute: the workers read it there).
pub fn dag(flow: &Flow, flow_path: &Path, options: &DagOptions) -> Result<Dag, String> {
    let id = match options.partitions {
        Some(_) => format!("tributary_{}_backfill", snake(&flow.name)),
        None => format!("tributary_{}", snake(&flow.name)),
    };
    let mut notes = Vec::new();
    let mut run_args = vec!["run".to_string()];
    let (schedule_line, dates, full) = match &flow.trigger {
        Trigger::OnDemand => ("schedule=None".to_string(), Vec::new(), false),
        Trigger::Event(_) => {
            return Err(
                "it runs on an event (a file, a webhook, changed records), which only `tributary serve` listens for; give it a schedule to run it from Airflow"
                    .into(),
            );
        }
        Trigger::Schedule {
            expression,
            time_zone,
            start,
            end,
            pull_mode,
            ..
        } => {
            let zone = time_zone.as_deref().unwrap_or("UTC");
            let at = |text: &str, setting| {
                schedule::instant(text, time_zone.as_deref(), setting)
                    .map_err(|e| e.message)
                    .and_then(|t| {
                        jiff::Timestamp::from_second(t.timestamp()).map_err(|e| e.to_string())
                    })
            };
            let parsed = schedule::parse(expression).map_err(|e| e.to_string())?;
            let schedule_line = match &parsed {
                Expression::Rate { minutes } => {
                    let (n, unit) = match *minutes {
                        m if m % 1440 == 0 => (m / 1440, "days"),
                        m if m % 60 == 0 => (m / 60, "hours"),
                        m => (m, "minutes"),
                    };
                    format!("schedule=datetime.timedelta({unit}={n})")
                }
                Expression::Cron(cron) => {
                    let five = cron.standard().map_err(|e| {
                        format!("its schedule `{expression}` cannot be said to Airflow: {e}")
                    })?;
                    format!("schedule={}", py(&five))
                }
            };
            let start = match start {
                Some(s) => at(s, "start")?,
                None => options
                    .today
                    .to_zoned(jiff::tz::TimeZone::get(zone).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?
                    .timestamp(),
            };
            let mut dates = vec![format!("start_date={}", pendulum_at(start, zone)?)];
            if let Some(end) = end {
                dates.push(format!("end_date={}", pendulum_at(at(end, "end")?, zone)?));
            }
            (schedule_line, dates, *pull_mode == PullMode::Complete)
        }
    };
    run_args.push(flow_path.display().to_string());
    for (name, value) in &options.params {
        run_args.push("--param".into());
        run_args.push(format!("{name}={value}"));
    }
    if full {
        run_args.push("--full".into());
    }
    let service = &flow.service;
    if service.when_running == WhenRunning::Skip {
        notes.push(
            "`when_running: skip`: Airflow queues a run that comes while one runs (max_active_runs=1) instead of skipping it".into(),
        );
    }
    if service.missed == Missed::Skip {
        notes.push(
            "`missed: skip`: with catchup off, Airflow still runs the latest run time missed while it was down".into(),
        );
    }
    if !flow.alerts.is_empty() {
        notes.push(
            "`alerts` are sent by `tributary serve` only: set Airflow's on_failure_callback or its notifications for this DAG".into(),
        );
    }
    let description = flow
        .description
        .as_deref()
        .unwrap_or(flow.name.as_str())
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let (imports, task) = match (&options.operator, options.partitions) {
        (Operator::Bash, Some(parts)) => (
            "from airflow.providers.standard.operators.bash import BashOperator",
            backfill_tasks(&options.tributary, &run_args, parts),
        ),
        (Operator::Kubernetes { .. }, Some(_)) => {
            return Err("a backfill in parts runs with --operator bash".into());
        }
        (Operator::Bash, None) => {
            let mut words = vec![shell_word(&options.tributary)];
            words.extend(run_args.iter().map(|a| shell_word(a)));
            // The command is a Jinja template to Airflow: braces of the flow's own stay
            // as they are.
            let command = verbatim(words.join(" "));
            (
                "from airflow.providers.standard.operators.bash import BashOperator",
                format!(
                    "    BashOperator(\n        task_id=\"run\",\n        bash_command={},\n        # The worker's environment: TRIBUTARY_STATE_URL, TRIBUTARY_VAULT_PASSPHRASE.\n        append_env=True,\n    )\n",
                    py(&command)
                ),
            )
        }
        (Operator::Kubernetes { image }, None) => {
            let flow_json = serde_json::to_string(flow).map_err(|e| e.to_string())?;
            let mut args = vec!["run".to_string(), "/tmp/flow.json".into()];
            args.extend(run_args.iter().skip(2).cloned());
            let script = format!(
                "printf '%s' \"$TRIBUTARY_FLOW\" > /tmp/flow.json && exec {}",
                std::iter::once(shell_word(&options.tributary))
                    .chain(args.iter().map(|a| shell_word(a)))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            (
                "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
                format!(
                    "    KubernetesPodOperator(\n        task_id=\"run\",\n        name={name},\n        image={image},\n        cmds=[\"sh\", \"-c\"],\n        arguments=[{script}],\n        # The flow file travels with the DAG; secrets come from the cluster's Secrets\n        # (TRIBUTARY_STATE_URL, TRIBUTARY_VAULT_PASSPHRASE), never from here.\n        env_vars={{\"TRIBUTARY_FLOW\": {flow}}},\n        get_logs=True,\n    )\n",
                    name = py(&id.replace('_', "-")),
                    image = py(image),
                    script = py(&script),
                    flow = py(&flow_json),
                ),
            )
        }
    };
    let mut settings = vec![
        format!("dag_id={}", py(&id)),
        format!("description={}", py(&description)),
    ];
    if options.partitions.is_some() {
        // A backfill runs when someone starts it.
        settings.push("schedule=None".into());
        settings.push(format!(
            "start_date=pendulum.datetime({}, {}, {}, tz=\"UTC\")",
            options.today.year(),
            options.today.month(),
            options.today.day()
        ));
    } else {
        settings.push(schedule_line);
        settings.extend(dates);
    }
    settings.push("catchup=False".into());
    settings.push("max_active_runs=1".into());
    if service.deactivate_after > 0 {
        settings.push(format!(
            "max_consecutive_failed_dag_runs={}",
            service.deactivate_after
        ));
    }
    settings.push(format!(
        "default_args={{\n        \"retries\": {},\n        \"retry_delay\": datetime.timedelta(seconds={}),\n        \"retry_exponential_backoff\": True,\n    }}",
        service.retries, service.retry_after_seconds
    ));
    settings.push("tags=[\"tributary\"]".into());
    let header = format!(
        "\"\"\"The Tributary flow {name}, run by Airflow.\n\nWritten by `tributary export airflow` from {path}: change the flow and export it\nagain rather than edit this file.\n\"\"\"\n",
        name = py(&flow.name),
        path = flow_path.display(),
    );
    let text = format!(
        "{header}\nimport datetime\n\nimport pendulum\n{imports}\nfrom airflow.sdk import DAG\n\nwith DAG(\n{settings},\n) as dag:\n{task}",
        settings = settings
            .iter()
            .map(|s| format!("    {s}"))
            .collect::<Vec<_>>()
            .join(",\n"),
    );
    Ok(Dag {
        file_name: format!("{id}.py"),
        dag_id: id,
        text,
        notes,
    })
}

/// The Jinja text of a command whose words are the flow's own: kept from templating.
fn verbatim(command: String) -> String {
    if ["{{", "{%", "{#"].iter().any(|b| command.contains(b)) {
        format!("{{% raw %}}{command}{{% endraw %}}")
    } else {
        command
    }
}

/// The tasks of a backfill in `parts` parts: a part per mapped task, all staging under
/// Airflow's run id; the commit when every part succeeded, the abort when one failed.
fn backfill_tasks(tributary: &str, run_args: &[String], parts: u32) -> String {
    let command = |args: &[String]| {
        std::iter::once(shell_word(tributary))
            .chain(args.iter().map(|a| shell_word(a)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // The run id is Airflow's, rendered into each command; the rest is taken as written.
    let with_run_id = |text: String| format!("{} --run-id '{{{{ run_id }}}}'", verbatim(text));
    let part_commands: Vec<String> = (0..parts)
        .map(|i| {
            let mut args = run_args.to_vec();
            // A backfill reads everything; the commit saves where it got to.
            if !args.iter().any(|a| a == "--full") {
                args.push("--full".into());
            }
            args.extend([
                "--partitions".into(),
                parts.to_string(),
                "--partition".into(),
                i.to_string(),
                "--stage-only".into(),
            ]);
            format!("            {},\n", py(&with_run_id(command(&args))))
        })
        .collect();
    let rest: Vec<String> = run_args[2..]
        .iter()
        .filter(|a| *a != "--full")
        .cloned()
        .collect();
    let then = |verb: &str| {
        let mut args = vec![verb.to_string(), run_args[1].clone()];
        args.extend(rest.iter().cloned());
        py(&with_run_id(command(&args)))
    };
    format!(
        "    # Each part reads its share of the sources and stages its output; a part tried\n    # again replaces what it staged.\n    parts = BashOperator.partial(task_id=\"part\", append_env=True).expand(\n        bash_command=[\n{parts}        ],\n    )\n    # Every part's output published at once, only when every part staged.\n    commit = BashOperator(task_id=\"commit\", bash_command={commit}, append_env=True)\n    # A part failed for good: what the others staged is removed.\n    abort = BashOperator(\n        task_id=\"abort\", bash_command={abort}, append_env=True, trigger_rule=\"one_failed\"\n    )\n    parts >> [commit, abort]\n",
        parts = part_commands.concat(),
        commit = then("commit"),
        abort = then("abort"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_words_are_made_safe_for_python_and_the_shell() {
        assert_eq!(snake("Daily Sales (EU)"), "daily_sales_eu");
        assert_eq!(snake("!!"), "flow");
        assert_eq!(
            shell_word("/srv/flows/orders.json"),
            "/srv/flows/orders.json"
        );
        assert_eq!(shell_word("day=it's"), r"'day=it'\''s'");
        assert_eq!(py("a \"b\"\n"), r#""a \"b\"\n""#);
    }
}
