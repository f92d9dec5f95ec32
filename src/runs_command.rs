//! `tributary runs [FLOW]`, `runs show ID` and `runs prune`: what ran, when and how it
//! went, from the run history; the whole record of one run; old runs removed. And
//! `tributary flows [DIR]`: the flows of a folder, when each runs and how its last run went.

use std::path::Path;

use clap::{Args, Subcommand};
use tributary::engine::{self, RunRecord};
use tributary::paths::Dirs;
use tributary::records::clip;
use tributary::state::{RunFilter, StateStore};

use crate::console::{errln, out_raw, outln};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    action: Option<RunsAction>,
    /// Only this flow's runs: a flow file, or a flow's name.
    flow: Option<String>,
    /// Only runs that ended so: successful, failed or canceled.
    #[arg(long)]
    status: Option<String>,
    /// Only runs started in this past span (`7d`, `12h`, `30m`) or since an RFC 3339
    /// instant.
    #[arg(long)]
    since: Option<String>,
    /// The most runs to list, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print the runs as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum RunsAction {
    /// Removes old runs, their records and rejected records with them: those started more
    /// than `--keep-days` ago, and those beyond the newest `--keep-runs` of their flow.
    Prune {
        /// Keep the runs of the last N days.
        #[arg(long, value_name = "N")]
        keep_days: Option<u32>,
        /// Keep the newest N runs of each flow.
        #[arg(long, value_name = "N")]
        keep_runs: Option<usize>,
        /// Only this flow's runs: a flow file, or a flow's name.
        flow: Option<String>,
    },
    /// One run's record: its figures, each node's, its outputs and where its rejected
    /// records are.
    Show {
        /// The run's execution id, or enough of its start to tell it apart.
        id: String,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn execute(args: RunsArgs, dirs: &Dirs) -> anyhow::Result<u8> {
    if let Err(e) = engine::index_missing(dirs) {
        errln!("warning: the run history could not take in older runs: {e}");
    }
    match args.action {
        Some(RunsAction::Show { id, json }) => show(&id, json, dirs),
        Some(RunsAction::Prune {
            keep_days,
            keep_runs,
            flow,
        }) => prune(keep_days, keep_runs, flow.as_deref(), dirs),
        None => list(args, dirs),
    }
}

fn list(args: RunsArgs, dirs: &Dirs) -> anyhow::Result<u8> {
    let status = match args
        .status
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => None,
        Some("successful" | "success" | "succeeded") => Some("Successful"),
        Some("failed" | "error") => Some("Error"),
        Some("canceled" | "cancelled") => Some("Canceled"),
        Some("skipped") => Some("Skipped"),
        Some(other) => {
            errln!("--status `{other}`: write successful, failed, canceled or skipped");
            return Ok(crate::INVALID);
        }
    };
    let since = match args.since.as_deref().map(since_instant).transpose() {
        Ok(since) => since,
        Err(why) => {
            errln!("{why}");
            return Ok(crate::INVALID);
        }
    };
    let flow = args.flow.as_deref().map(flow_name);
    let state = StateStore::open(dirs).map_err(anyhow::Error::msg)?;
    let runs = state
        .runs(&RunFilter {
            flow,
            status: status.map(str::to_string),
            since,
            limit: Some(args.limit),
        })
        .map_err(anyhow::Error::msg)?;
    if args.json {
        out_raw!("{}\n", serde_json::to_string_pretty(&runs)?);
        return Ok(0);
    }
    if runs.is_empty() {
        outln!("no runs");
        return Ok(0);
    }
    outln!(
        "{:<19}  {:<28}  {:<10}  {:<8}  {:>9}  {:>8}  {:>8}  {:>8}  run",
        "started",
        "flow",
        "status",
        "how",
        "written",
        "rejected",
        "took",
        "cost"
    );
    for run in &runs {
        let started = run.started_here("%Y-%m-%d %H:%M:%S");
        let status = run.result();
        outln!(
            "{started:<19}  {:<28}  {status:<10}  {:<8}  {:>9}  {:>8}  {:>7.1}s  {:>8}  {}",
            clip(&run.flow, 28),
            run.how(),
            run.records_written,
            run.records_rejected,
            run.duration_seconds,
            format!("${:.4}", run.cost_usd),
            run.execution_id
        );
        if let Some(error) = &run.error {
            outln!("    {}", clip(error, 150));
        }
    }
    Ok(0)
}

fn show(id: &str, json: bool, dirs: &Dirs) -> anyhow::Result<u8> {
    let runs = dirs.data.join("runs");
    let matches: Vec<String> = std::fs::read_dir(&runs)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(id))
                .collect()
        })
        .unwrap_or_default();
    let folder = match matches.as_slice() {
        [one] => runs.join(one),
        [] => {
            errln!("there is no run {id}; `tributary runs` lists them");
            return Ok(crate::INVALID);
        }
        many => {
            errln!(
                "{} runs start with {id}: {}; give more of the id",
                many.len(),
                many.join(", ")
            );
            return Ok(crate::INVALID);
        }
    };
    let path = folder.join("run.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if json {
        out_raw!("{text}\n");
        return Ok(0);
    }
    let record: RunRecord = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a run record: {e}", path.display()))?;
    outln!("{}", record.summary());
    outln!("  started {}", record.started_at.to_rfc3339());
    outln!("  nodes:");
    for node in &record.nodes {
        outln!(
            "    {:<20} {}: {} in, {} out, {} dropped, {} rejected",
            node.node,
            node.state.in_words(),
            node.records_in,
            node.records_out,
            node.records_dropped,
            node.records_rejected
        );
    }
    outln!("  record: {}", path.display());
    Ok(0)
}

fn prune(
    keep_days: Option<u32>,
    keep_runs: Option<usize>,
    flow: Option<&str>,
    dirs: &Dirs,
) -> anyhow::Result<u8> {
    if keep_days.is_none() && keep_runs.is_none() {
        errln!("say what to keep: --keep-days N, --keep-runs N, or both");
        return Ok(crate::INVALID);
    }
    let flow = flow.map(flow_name);
    let pruned =
        engine::prune(dirs, keep_days, keep_runs, flow.as_deref()).map_err(anyhow::Error::msg)?;
    outln!(
        "removed {} run{} ({}); {} kept",
        pruned.removed,
        if pruned.removed == 1 { "" } else { "s" },
        engine::human_bytes(pruned.bytes),
        pruned.kept
    );
    Ok(0)
}

/// One flow of a folder as `tributary flows` lists it.
#[derive(serde::Serialize)]
struct FlowLine {
    file: String,
    name: Option<String>,
    /// `on demand`, the schedule expression, or why the file is not a flow.
    trigger: String,
    /// `active` (the service runs it on its trigger), `inactive`, or `deactivated: why`
    /// when the service deactivated it.
    state: String,
    /// RFC 3339.
    next_run: Option<String>,
    last_run: Option<tributary::state::RunRow>,
}

pub fn list_flows(folder: &Path, json: bool, dirs: &Dirs) -> anyhow::Result<u8> {
    if let Err(e) = engine::index_missing(dirs) {
        errln!("warning: the run history could not take in older runs: {e}");
    }
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .map_err(|e| anyhow::anyhow!("cannot read the folder {}: {e}", folder.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    let state = StateStore::open(dirs).map_err(anyhow::Error::msg)?;
    let now = jiff::Timestamp::now();
    let mut lines = Vec::new();
    for file in files {
        let flow = match tributary::flow::Flow::load(&file) {
            Ok(flow) => flow,
            // Other JSON files live beside flows (data, settings): only flows are listed.
            Err(_) if !looks_like_flow(&file) => continue,
            Err(e) => {
                lines.push(FlowLine {
                    file: file.display().to_string(),
                    name: None,
                    trigger: format!("not a valid flow: {e}"),
                    state: "inactive".into(),
                    next_run: None,
                    last_run: None,
                });
                continue;
            }
        };
        let (trigger, next_run) = match flow.trigger.schedule_of() {
            None => ("on demand".to_string(), None),
            Some(Ok(schedule)) => (
                flow.trigger.in_words(),
                schedule.next_after(now).map(|at| schedule.show(at)),
            ),
            Some(Err(e)) => (format!("{}: {}", e.setting, e.message), None),
        };
        let last_run = state
            .runs(&RunFilter {
                flow: Some(flow.name.clone()),
                limit: Some(1),
                ..Default::default()
            })
            .map_err(anyhow::Error::msg)?
            .pop();
        let activation = state.activation(&flow.name).map_err(anyhow::Error::msg)?;
        lines.push(FlowLine {
            file: file.display().to_string(),
            name: Some(flow.name),
            trigger,
            state: activation_in_words(activation.as_ref()),
            next_run,
            last_run,
        });
    }
    if json {
        out_raw!("{}\n", serde_json::to_string_pretty(&lines)?);
        return Ok(0);
    }
    if lines.is_empty() {
        outln!("no flows in {}", folder.display());
    }
    for line in &lines {
        outln!("{}  ({})", line.name.as_deref().unwrap_or("?"), line.file);
        outln!("    when: {}", line.trigger);
        if line.name.is_some() {
            outln!("    state: {}", line.state);
        }
        if let Some(next) = &line.next_run {
            outln!("    next run: {next}");
        }
        match &line.last_run {
            Some(run) => outln!(
                "    last run: {}, {}, {} written",
                run.started_here("%Y-%m-%d %H:%M:%S"),
                run.result(),
                run.records_written
            ),
            None if line.name.is_some() => outln!("    last run: never"),
            None => {}
        }
    }
    Ok(0)
}

/// A flow's activation as `tributary flows` says it.
pub fn activation_in_words(activation: Option<&tributary::state::Activation>) -> String {
    match activation {
        Some(a) if a.active => "active".into(),
        Some(a) => match &a.reason {
            Some(reason) => format!("inactive ({reason})"),
            None => "inactive".into(),
        },
        None => "inactive".into(),
    }
}

/// Whether a JSON file that does not load says it is a flow file (its `format`).
fn looks_like_flow(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|text| text.contains("tributary.flow/"))
}

/// A flow file's flow name, or the text itself when it names no file.
fn flow_name(text: &str) -> String {
    let path = Path::new(text);
    if path.is_file()
        && let Ok(flow) = tributary::flow::Flow::load(path)
    {
        return flow.name;
    }
    text.to_string()
}

/// `7d`, `12h`, `30m` before now, or an RFC 3339 instant, as the history keeps instants.
fn since_instant(text: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "--since `{text}`: write a span such as 7d, 12h or 30m, or an instant such as 2026-12-01T00:00:00Z"
        )
    };
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(engine::history_instant(at.with_timezone(&chrono::Utc)));
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    let span = match unit {
        "d" => chrono::Duration::try_days(n),
        "h" => chrono::Duration::try_hours(n),
        "m" => chrono::Duration::try_minutes(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(engine::history_instant(chrono::Utc::now() - span))
}
