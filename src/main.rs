//! The `tributary` command: runs, validates and previews flows headless. The same flows
//! and engine serve the desktop app.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indexmap::IndexMap;
use tokio::sync::mpsc;

use tributary::engine::{self, RunEvent, RunOptions, RunStatus, human_bytes};
use tributary::flow::Problem;
use tributary::paths::Dirs;
use tributary::workspace::Workspace;
use tributary::{registry, schema, workspace};

mod appflow_command;
mod connection_command;
mod console;
mod export_command;
mod runs_command;
mod serve_command;

use console::{errln, out_raw, outln};

/// Runs allocate and free many large buffers a second (one per batch and column); mimalloc
/// reuses them where the system allocator returns pages to the kernel and faults them in
/// again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3 keeps a thread's freed memory for a second before giving it back (version 2
/// kept it 10 ms). Every thread that handles batches keeps its own, and a run's peak memory
/// was higher than it needed to be. Measured on the reference benchmark (10M records, 2
/// cores, huge pages off as below): 1000 ms 259 MiB; 250 ms 234 MiB; 100 ms 210 MiB but 34%
/// more CPU (31.3 vs 23.4 CPU-seconds), as freed buffers go back to the kernel and are
/// faulted in again. `MIMALLOC_PURGE_DELAY` in the environment still wins.
///
/// mimalloc also asks the kernel for transparent huge pages, and every page it purges and
/// touches again is then a 2 MiB page the kernel zeroes whole: on the reference benchmark
/// (1M records) that zeroing was 18% of the run's CPU, and a run's peak memory ~50 MiB
/// higher (225 vs 172 MiB). Without them the same purge costs a 4 KiB page at a time.
/// `MIMALLOC_ALLOW_THP` in the environment still wins.
fn tune_allocator() {
    // SAFETY: plain setters of process-wide options, called before any other thread exists;
    // `mi_option_purge_delay` is 15 and `mi_option_allow_thp` 43 in mimalloc 3's
    // `mi_option_e`.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        unsafe { libmimalloc_sys::mi_option_set(15, 250) };
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        unsafe { libmimalloc_sys::mi_option_set(43, 0) };
        // mimalloc reserved its first memory, with huge pages, before `main`: the
        // process-wide switch covers that too.
        #[cfg(target_os = "linux")]
        // SAFETY: PR_SET_THP_DISABLE takes no pointers; it fails harmlessly on old kernels.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0)
        };
    }
}

#[derive(Parser)]
#[command(
    name = "tributary",
    version,
    about = "Move records from SaaS apps and files to your data lake, on your own machine.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Without a command, the app opens.
    #[command(subcommand)]
    command: Option<Command>,
    /// Open this flow file in the app: `tributary FLOW` is `tributary gui FLOW`.
    flow: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the app, with a flow file or the welcome screen.
    Gui {
        /// The flow file to open.
        flow: Option<PathBuf>,
        #[command(flatten)]
        options: tributary::ui::Options,
    },
    /// Run a flow and report what it did.
    Run {
        flow: PathBuf,
        /// Fill or override a `${name}` placeholder; repeatable.
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Print the run record as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Read everything, not only what is new since the last run; where the sources
        /// get to is saved all the same.
        #[arg(long)]
        full: bool,
        /// Run one part of a partitioned run of N parts: each source reads its part of the
        /// records, and the output stays staged until `tributary commit` publishes every
        /// part's at once. Needs --partition, --run-id and --stage-only.
        #[arg(long, value_name = "N", requires_all = ["partition", "run_id", "stage_only"])]
        partitions: Option<u32>,
        /// Which part, from 0 to N - 1.
        #[arg(long, value_name = "I", requires = "partitions")]
        partition: Option<u32>,
        /// The id every part of the partitioned run shares; `commit` and `abort` name it.
        #[arg(long, value_name = "ID", requires = "partitions")]
        run_id: Option<String>,
        /// Keep the output staged for `tributary commit` instead of publishing it.
        #[arg(long, requires = "partitions")]
        stage_only: bool,
    },
    /// Publish what every part of a partitioned run staged, at once: only when every part
    /// staged.
    Commit {
        flow: PathBuf,
        #[arg(long, value_name = "ID")]
        run_id: String,
        /// Fill or override a `${name}` placeholder; repeatable.
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Print the history's entry for the run as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove what the parts of a partitioned run staged, publishing nothing.
    Abort {
        flow: PathBuf,
        #[arg(long, value_name = "ID")]
        run_id: String,
        /// Fill or override a `${name}` placeholder; repeatable.
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
    },
    /// What a folder's catalog says: `catalog show FOLDER`.
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Show or reset where a flow's incremental sources left off.
    State {
        #[command(subcommand)]
        action: StateAction,
    },
    /// Add, list, test, log in to and remove connections.
    Connection {
        #[command(subcommand)]
        action: connection_command::ConnectionAction,
    },
    /// Check flows; every problem with its node and JSON path.
    Validate {
        #[arg(required = true)]
        flows: Vec<PathBuf>,
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
    },
    /// Show the records leaving one node, on a sample of the sources' first records.
    Preview {
        flow: PathBuf,
        /// The node's id.
        #[arg(long)]
        node: String,
        /// Records to read from each source.
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Print the records as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What ran, when and how it went; `runs show ID` for one run's record.
    Runs(runs_command::RunsArgs),
    /// The flows of a folder: when each runs, its next run, how its last run went.
    Flows {
        /// The folder; the current one when left out.
        #[arg(default_value = ".")]
        folder: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run every active flow of a folder on its trigger, headless, until stopped.
    Serve(serve_command::ServeArgs),
    /// Have the service run a flow on its trigger from now on.
    Activate { flow: PathBuf },
    /// Stop the service running a flow on its trigger (a flow file, or a flow's name).
    Deactivate { flow: String },
    /// When a scheduled flow runs.
    Schedule {
        #[command(subcommand)]
        action: ScheduleAction,
    },
    /// Bring a flow over from another tool: `import appflow FILE`.
    Import {
        #[command(subcommand)]
        action: appflow_command::ImportAction,
    },
    /// Write flows for another tool to run: `export appflow FLOW`, `export airflow FLOW…`.
    Export {
        #[command(subcommand)]
        action: export_command::ExportAction,
    },
    /// Print the flow file's JSON Schema, or with `--connector` the connector manifest's.
    Schema {
        #[arg(long)]
        connector: bool,
    },
    /// List the node types: sources, transforms and destinations.
    Connectors {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ScheduleAction {
    /// Print the flow's next run times, one RFC 3339 instant a line, with the offset of
    /// the schedule's time zone.
    Next {
        flow: PathBuf,
        /// How many.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// From this instant (RFC 3339) instead of now; a run at it is listed.
        #[arg(long, value_name = "RFC3339")]
        from: Option<String>,
    },
}

#[derive(Subcommand)]
enum StateAction {
    /// Where each incremental source of the flow will start its next run.
    Show {
        flow: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Forget where the flow's sources left off: the next run reads everything.
    Reset { flow: PathBuf },
}

#[derive(Subcommand)]
enum CatalogAction {
    /// The table a local folder's catalog describes: its columns, its partitions with
    /// their records, and the DuckDB view over it, with the view's SQL.
    Show {
        /// A folder a `destination.local` with `catalog` writes to.
        folder: PathBuf,
        /// Print `_tributary_table.json` as it is.
        #[arg(long)]
        json: bool,
    },
}

fn catalog(action: CatalogAction) -> anyhow::Result<u8> {
    use tributary::connectors::catalog::duckdb;
    let CatalogAction::Show { folder, json } = action;
    let table = match duckdb::read(&folder) {
        Ok(Some(table)) => table,
        Ok(None) => {
            errln!(
                "{} has no catalog ({} is not there): give its `destination.local` node a `catalog` setting, and run the flow",
                folder.display(),
                duckdb::TABLE_FILE
            );
            return Ok(INVALID);
        }
        Err(e) => {
            errln!("{e}");
            return Ok(INVALID);
        }
    };
    if json {
        out_raw!("{}\n", serde_json::to_string_pretty(&table)?);
    } else {
        out_raw!("{}", duckdb::describe(&table));
        outln!("");
        out_raw!("{}", duckdb::view_sql(&table));
    }
    Ok(0)
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

/// Exit codes: 0 success, 1 the run failed (or a service the flow reads did, before the
/// flow could be checked whole), 2 the flow or the command line is invalid.
pub(crate) const INVALID: u8 = 2;
const FAILED: u8 = 1;

/// The exit code for a flow's problems: a service failing is not a flaw of the flow.
fn code_of(problems: &[Problem]) -> u8 {
    if problems.iter().all(|p| p.service) {
        FAILED
    } else {
        INVALID
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    // The service says what it does as it goes; other commands only warn.
    match &cli.command {
        Some(Command::Serve(args)) => init_logs(
            tracing::Level::INFO,
            args.log_format == serve_command::LogFormat::Json,
        ),
        _ => init_logs(tracing::Level::WARN, false),
    }
    let command = cli.command.unwrap_or(Command::Gui {
        flow: cli.flow,
        options: Default::default(),
    });
    match execute(command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn execute(command: Command) -> anyhow::Result<u8> {
    let dirs = Dirs::from_env();
    if let Err(e) = tributary::auth::http::load_proxy(&dirs) {
        errln!("warning: {e}; going without the proxy setting");
    }
    // The user's connector manifests, before anything lists the connectors.
    let left_out: Vec<String> = tributary::connectors::load_manifests(&dirs)
        .into_iter()
        .map(|problem| format!("A connector manifest is left out: {problem}"))
        .collect();
    for warning in &left_out {
        errln!("warning: {warning}");
    }
    match command {
        Command::Gui { flow, options } => {
            tributary::ui::run(flow, options, left_out)?;
            Ok(0)
        }
        Command::Run {
            flow,
            params,
            json,
            full,
            partitions,
            partition,
            run_id,
            stage_only: _,
        } => {
            let part = match (partitions, partition, run_id) {
                (Some(count), Some(index), Some(run_id)) if index < count => {
                    Some(engine::PartitionRun {
                        part: tributary::node::Partition { index, count },
                        run_id,
                    })
                }
                (Some(count), Some(index), _) => {
                    errln!(
                        "--partition {index} is not one of the {count} parts: they go from 0 to {}",
                        count.saturating_sub(1)
                    );
                    return Ok(INVALID);
                }
                _ => None,
            };
            run(flow, params.into_iter().collect(), json, full, part, dirs)
        }
        Command::Commit {
            flow,
            run_id,
            params,
            json,
        } => commit(flow, params, &run_id, json, &dirs),
        Command::Abort {
            flow,
            run_id,
            params,
        } => abort(flow, params, &run_id, &dirs),
        Command::State { action } => state(action, &dirs),
        Command::Catalog { action } => catalog(action),
        Command::Connection { action } => connection_command::execute(action, &dirs),
        Command::Import { action } => appflow_command::execute(action, &dirs),
        Command::Export { action } => export_command::export(action),
        Command::Validate { flows, params } => {
            let overrides: IndexMap<String, String> = params.into_iter().collect();
            let mut code = 0;
            let workspace = Workspace::new(dirs.clone());
            for path in flows {
                match workspace::plan_file(&path, &overrides, &workspace) {
                    Ok((flow, plan)) => {
                        outln!(
                            "{}: ok, \"{}\" with {} nodes",
                            path.display(),
                            flow.name,
                            plan.nodes.len()
                        );
                        if let Some(Ok(schedule)) = flow.trigger.schedule_of() {
                            let next = schedule.upcoming(jiff::Timestamp::now(), 3);
                            let times: Vec<String> =
                                next.iter().map(|t| schedule.show(*t)).collect();
                            match times.is_empty() {
                                true => outln!("  no run is left in its schedule"),
                                false => outln!("  next runs: {}", times.join(", ")),
                            }
                        }
                    }
                    Err(problems) => {
                        report(&path, &problems);
                        code = code.max(code_of(&problems));
                    }
                }
            }
            Ok(code)
        }
        Command::Preview {
            flow,
            node,
            limit,
            params,
            json,
        } => {
            let loaded = match tributary::flow::Flow::load(&flow) {
                Ok(f) => f,
                Err(e) => {
                    errln!("{e}");
                    return Ok(INVALID);
                }
            };
            if loaded.node(&node).is_none() {
                let ids: Vec<&str> = loaded.nodes.iter().map(|n| n.id.as_str()).collect();
                errln!(
                    "{}: there is no node `{node}`; its nodes are {}",
                    flow.display(),
                    ids.join(", ")
                );
                return Ok(INVALID);
            }
            // Only the node and what feeds it must be valid: the rest may be unfinished.
            let base = workspace::base_dir(&flow);
            let plan = match workspace::plan_preview(
                &loaded,
                &base,
                &params.into_iter().collect(),
                &Workspace::new(dirs.clone()),
                &node,
            ) {
                Ok(p) => p,
                Err(problems) => {
                    report(&flow, &problems);
                    return Ok(code_of(&problems));
                }
            };
            unlock_for(&loaded, &dirs)?;
            let runtime = tokio::runtime::Runtime::new()?;
            let preview = match runtime.block_on(engine::preview(
                &plan,
                &node,
                limit,
                &RunOptions::new(dirs),
            )) {
                Ok(p) => p,
                Err(e) => {
                    errln!(
                        "preview failed{}: {}",
                        e.node
                            .map(|n| format!(" in node `{n}`"))
                            .unwrap_or_default(),
                        e.message
                    );
                    return Ok(1);
                }
            };
            if json {
                let mut records = Vec::new();
                {
                    let mut w = arrow::json::ArrayWriter::new(&mut records);
                    for b in &preview.batches {
                        w.write(b)?;
                    }
                    w.finish()?;
                }
                let records: serde_json::Value = if records.is_empty() {
                    serde_json::json!([])
                } else {
                    serde_json::from_slice(&records)?
                };
                let fields: Vec<_> = preview
                    .schema
                    .fields()
                    .iter()
                    .map(|f| serde_json::json!({"name": f.name(), "type": tributary::types::describe(f.data_type())}))
                    .collect();
                let out = serde_json::json!({"node": preview.node, "fields": fields, "records": records, "rejected": preview.rejected});
                out_raw!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                outln!(
                    "{}",
                    arrow::util::pretty::pretty_format_batches(&preview.batches)?
                );
                outln!("{} records from node `{node}`", preview.num_rows());
                for r in &preview.rejected {
                    outln!("rejected: {r}");
                }
            }
            Ok(0)
        }
        Command::Runs(args) => runs_command::execute(args, &dirs),
        Command::Serve(args) => serve_command::serve(args, dirs),
        Command::Activate { flow } => serve_command::activate(&flow, &dirs),
        Command::Deactivate { flow } => serve_command::deactivate(&flow, &dirs),
        Command::Flows { folder, json } => runs_command::list_flows(&folder, json, &dirs),
        Command::Schedule {
            action: ScheduleAction::Next { flow, count, from },
        } => schedule_next(&flow, count, from.as_deref()),
        Command::Schema { connector } => {
            let text = match connector {
                true => tributary::connectors::framework::manifest::json_schema_text(),
                false => schema::flow_schema_text(),
            };
            out_raw!("{}", text.trim_end());
            Ok(0)
        }
        Command::Connectors { json } => connectors(json),
    }
}

/// `tributary connectors`: every node type, and every service connections are made for
/// with what its nodes can do.
fn connectors(json: bool) -> anyhow::Result<u8> {
    use tributary::connectors::services;
    if json {
        let list: Vec<_> = registry::all()
            .iter()
            .map(|t| {
                let mut entry = serde_json::json!({
                    "type": t.name, "role": t.role, "title": t.title, "description": t.description
                });
                if let Some(service) = services().iter().find(|s| Some(s.id()) == t.service) {
                    entry["connector"] = service.id().into();
                    entry["capabilities"] = serde_json::to_value(service.capabilities())?;
                }
                Ok(entry)
            })
            .collect::<anyhow::Result<_>>()?;
        out_raw!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    for t in registry::all() {
        outln!(
            "{:<24} {:<12} {}",
            t.name,
            t.role.to_string(),
            t.description
        );
    }
    outln!("");
    // As wide as the longest id and label, so that the columns line up.
    let id_width = services()
        .iter()
        .map(|s| s.id().len())
        .max()
        .unwrap_or(0)
        .max(9);
    let label_width = (services().iter())
        .map(|s| s.sign_in().label.len())
        .max()
        .unwrap_or(0)
        .max(7);
    outln!(
        "{:<id_width$} {:<label_width$} {:<9} {:<12} {:<30} filters",
        "connector",
        "service",
        "entities",
        "incremental",
        "writes"
    );
    let words = |list: Vec<&str>| match list.is_empty() {
        true => "-".to_string(),
        false => list.join(", "),
    };
    let yes = |b: bool| if b { "yes" } else { "-" };
    for service in services() {
        let can = service.capabilities();
        outln!(
            "{:<id_width$} {:<label_width$} {:<9} {:<12} {:<30} {}",
            service.id(),
            service.sign_in().label,
            yes(can.entities),
            yes(can.incremental),
            words(can.writes.iter().map(|w| w.name()).collect()),
            words(can.filters.iter().map(|o| o.in_words()).collect())
        );
    }
    Ok(0)
}

/// Asks for the vault passphrase before a run whose connections keep secrets, at a
/// terminal, rather than failing in the middle. Headless runs give it in the environment.
fn unlock_for(flow: &tributary::flow::Flow, dirs: &Dirs) -> anyhow::Result<()> {
    let Ok(all) = tributary::auth::load(dirs) else {
        return Ok(());
    };
    let needs_secrets = flow
        .nodes
        .iter()
        .filter_map(|n| n.config.get("connection")?.as_str())
        .any(|name| {
            all.get(name)
                .is_some_and(|c| c.auth != tributary::auth::AuthKind::None)
        });
    if needs_secrets && std::io::stdin().is_terminal() && !tributary::auth::vault::is_unlocked(dirs)
    {
        connection_command::unlock(dirs)?;
    }
    Ok(())
}

fn report(path: &std::path::Path, problems: &[Problem]) {
    errln!(
        "{}: {} problem{}",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        errln!("  {p}");
    }
}

/// `tributary schedule next`: the flow's next run times.
fn schedule_next(path: &std::path::Path, count: usize, from: Option<&str>) -> anyhow::Result<u8> {
    let flow = match tributary::flow::Flow::load(path) {
        Ok(f) => f,
        Err(e) => {
            errln!("{e}");
            return Ok(INVALID);
        }
    };
    let schedule = match flow.trigger.schedule_of() {
        None => {
            errln!(
                "{}: the flow runs on demand; give it a schedule trigger to have run times",
                path.display()
            );
            return Ok(INVALID);
        }
        Some(Err(e)) => {
            errln!("{}: trigger › {}: {}", path.display(), e.setting, e.message);
            return Ok(INVALID);
        }
        Some(Ok(schedule)) => schedule,
    };
    let after = match from {
        None => jiff::Timestamp::now(),
        Some(text) => match text.parse::<jiff::Timestamp>() {
            // A run at the instant itself is listed.
            Ok(at) => at - jiff::SignedDuration::from_nanos(1),
            Err(_) => {
                errln!("--from `{text}` is not an RFC 3339 instant such as 2026-12-01T08:00:00Z");
                return Ok(INVALID);
            }
        },
    };
    for at in schedule.upcoming(after, count) {
        outln!("{}", schedule.show(at));
    }
    Ok(0)
}

/// Watermarks are kept by flow name, the name the run records carry.
fn state(action: StateAction, dirs: &Dirs) -> anyhow::Result<u8> {
    let path = match &action {
        StateAction::Show { flow, .. } | StateAction::Reset { flow } => flow,
    };
    let flow = match tributary::flow::Flow::load(path) {
        Ok(f) => f,
        Err(e) => {
            errln!("{e}");
            return Ok(INVALID);
        }
    };
    let store = tributary::state::StateStore::open(dirs).map_err(anyhow::Error::msg)?;
    match action {
        StateAction::Show { json, .. } => {
            let marks = store.watermarks(&flow.name).map_err(anyhow::Error::msg)?;
            if json {
                out_raw!("{}", serde_json::to_string_pretty(&marks)?);
            } else if marks.is_empty() {
                outln!(
                    "\"{}\": no source has a saved watermark; the next run reads everything",
                    flow.name
                );
            } else {
                for m in marks {
                    outln!(
                        "{}: {} (saved by run {} at {})",
                        m.node,
                        m.value,
                        m.execution_id,
                        m.saved_at
                    );
                }
            }
        }
        StateAction::Reset { .. } => {
            let n = store.reset(&flow.name).map_err(anyhow::Error::msg)?;
            outln!(
                "\"{}\": {n} watermark{} forgotten; the next run reads everything",
                flow.name,
                if n == 1 { "" } else { "s" }
            );
        }
    }
    Ok(0)
}

/// The flow and plan of `tributary commit` and `tributary abort`, the vault opened for
/// its connections; `None` when the flow cannot be planned (its problems are reported).
fn plan_partitioned(
    path: &std::path::Path,
    params: Vec<(String, String)>,
    dirs: &Dirs,
) -> anyhow::Result<Option<(tributary::flow::Flow, tributary::flow::Plan)>> {
    let overrides: IndexMap<String, String> = params.into_iter().collect();
    match workspace::plan_file(path, &overrides, &Workspace::new(dirs.clone())) {
        Ok((flow, plan)) => {
            unlock_for(&flow, dirs)?;
            Ok(Some((flow, plan)))
        }
        Err(problems) => {
            report(path, &problems);
            Ok(None)
        }
    }
}

/// `tributary commit`: publishes every part of a partitioned run at once.
fn commit(
    path: PathBuf,
    params: Vec<(String, String)>,
    run_id: &str,
    json: bool,
    dirs: &Dirs,
) -> anyhow::Result<u8> {
    let Some((flow, plan)) = plan_partitioned(&path, params, dirs)? else {
        return Ok(INVALID);
    };
    match engine::commit_partitions(&plan, dirs, run_id) {
        Ok(done) if json => {
            out_raw!("{}", serde_json::to_string_pretty(&done.run)?);
            Ok(0)
        }
        Ok(done) => {
            outln!(
                "run {run_id} of \"{}\": published its {} parts at once — {} records written, {} rejected, {}",
                flow.name,
                done.parts,
                done.run.records_written,
                done.run.records_rejected,
                human_bytes(done.run.bytes_written)
            );
            for output in &done.outputs {
                outln!("  {}", output.location);
            }
            Ok(0)
        }
        Err(e) => {
            errln!("{}: {e}", path.display());
            Ok(1)
        }
    }
}

/// `tributary abort`: removes what the parts of a partitioned run staged.
fn abort(
    path: PathBuf,
    params: Vec<(String, String)>,
    run_id: &str,
    dirs: &Dirs,
) -> anyhow::Result<u8> {
    let Some((flow, plan)) = plan_partitioned(&path, params, dirs)? else {
        return Ok(INVALID);
    };
    match engine::abort_partitions(&plan, dirs, run_id) {
        Ok(parts) => {
            outln!(
                "run {run_id} of \"{}\": removed what its {parts} part(s) staged; nothing was published",
                flow.name
            );
            Ok(0)
        }
        Err(e) => {
            errln!("{}: {e}", path.display());
            Ok(1)
        }
    }
}

fn run(
    path: PathBuf,
    overrides: IndexMap<String, String>,
    json: bool,
    full: bool,
    partition: Option<engine::PartitionRun>,
    dirs: Dirs,
) -> anyhow::Result<u8> {
    let (flow, plan) = match workspace::plan_file(&path, &overrides, &Workspace::new(dirs.clone()))
    {
        Ok(p) => p,
        Err(problems) if problems.iter().all(|p| p.service) => {
            // The flow is fine; a service it reads is not: a failed run, recorded as such.
            let flow = tributary::flow::Flow::load(&path)?;
            let first = &problems[0];
            let error = engine::RunError {
                node: first.node.clone(),
                message: problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                transient: false,
            };
            let base = workspace::base_dir(&path);
            let record = engine::failed_to_start(&flow, &base, error, RunOptions::new(dirs));
            return print_record(&record, json);
        }
        Err(problems) => {
            report(&path, &problems);
            return Ok(INVALID);
        }
    };
    unlock_for(&flow, &dirs)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runner")?;
    let mut options = RunOptions::new(dirs);
    options.full = full;
    if let Some(p) = &partition {
        options.trigger = format!(
            "partition: {} of {} of run {}, staged",
            p.part.index + 1,
            p.part.count,
            p.run_id
        );
    }
    let staged = partition.clone();
    options.partition = partition;
    let (events, mut rx) = mpsc::unbounded_channel();
    options.events = Some(events);
    let cancel = options.cancel.clone();
    let show_progress = std::io::stderr().is_terminal();
    let record = runtime.block_on(async {
        tokio::spawn(async move {
            if stop_asked().await {
                errln!("cancelling…");
                cancel.cancel();
            }
        });
        let watcher = tokio::spawn(async move {
            let bar = show_progress.then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
            let mut read = std::collections::HashMap::new();
            while let Some(event) = rx.recv().await {
                match event {
                    RunEvent::Node { node, figures } => {
                        read.insert(node, figures);
                        if let Some(bar) = &bar {
                            let into: u64 = read.values().map(|f| f.records_in).sum();
                            let bytes: u64 = read.values().map(|f| f.bytes_in + f.bytes_out).sum();
                            bar.set_message(format!(
                                "{into} records through the nodes, {} moved",
                                human_bytes(bytes)
                            ));
                        }
                    }
                    RunEvent::Finished(_) => break,
                    RunEvent::Started { .. } => {}
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        let record = engine::run(&plan, options).await;
        let _ = watcher.await;
        record
    });
    let code = print_record(&record, json)?;
    if let Some(p) = &staged
        && !json
        && record.status == RunStatus::Successful
    {
        outln!(
            "  part {} of {} staged; `tributary commit {} --run-id {}` publishes every part's output once all have staged",
            p.part.index + 1,
            p.part.count,
            path.display(),
            p.run_id
        );
    }
    Ok(code)
}

/// Prints a run's record (JSON or a summary); the exit code its status calls for.
fn print_record(record: &engine::RunRecord, json: bool) -> anyhow::Result<u8> {
    if json {
        out_raw!("{}", serde_json::to_string_pretty(record)?);
    } else {
        outln!("{}", record.summary());
    }
    Ok(if record.status == RunStatus::Successful {
        0
    } else {
        1
    })
}

/// Logs go to stderr. By default only Tributary's own messages from `level` up show: the
/// libraries below it (the AWS SDK looking for credentials, say) speak only of errors,
/// since their warnings are about their internals, not about what the user asked.
/// `TRIBUTARY_LOG=debug` (or `info`, `trace`…) shows everything at that level. `json`
/// writes one JSON object a line, for log collectors.
fn init_logs(level: tracing::Level, json: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    let chosen: Option<tracing::Level> = std::env::var("TRIBUTARY_LOG")
        .ok()
        .and_then(|l| l.parse().ok());
    let level = chosen.unwrap_or(level);
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("tributary", level)
        .with_default(chosen.unwrap_or(tracing::Level::ERROR));
    let logs = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match json {
        true => tracing::subscriber::set_global_default(logs.json().finish().with(filter)),
        false => tracing::subscriber::set_global_default(logs.finish().with(filter)),
    };
}

/// Waits for Ctrl+C or SIGTERM (what `kill`, systemd and container runtimes send to stop
/// a process): both cancel a run the same way, so it ends recorded as canceled with
/// nothing published. False when signals cannot be watched.
pub(crate) async fn stop_asked() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            r = term.recv() => r.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_file_alone_opens_the_app_on_it() {
        let cli = Cli::try_parse_from(["tributary", "flows/x.json"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.flow, Some(PathBuf::from("flows/x.json")));
        let cli = Cli::try_parse_from(["tributary", "run", "flows/x.json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Run { .. })));
        assert!(cli.flow.is_none());
    }
}
