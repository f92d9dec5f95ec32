//! `tributary serve`, `activate` and `deactivate`: the headless service and the switch
//! that tells it which flows to run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tributary::flow::{Flow, Trigger};
use tributary::paths::Dirs;
use tributary::service::{self, Clock};
use tributary::state::{ServiceLock, StateStore};

use crate::console::{errln, out_raw, outln};
use crate::{INVALID, stop_asked};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The folder of flow files to run; `flows` in the data folder when left out.
    #[arg(long)]
    flows: Option<PathBuf>,
    /// Runs going at once, over all flows.
    #[arg(long, default_value_t = 4)]
    max_parallel: usize,
    /// How long running runs may take to finish once the service is asked to stop
    /// (SIGTERM, Ctrl+C); the rest are cancelled, publishing nothing.
    #[arg(long, default_value = "60s", value_parser = parse_span)]
    grace: Duration,
    /// Where `/healthz` and `/metrics` answer: loopback unless you bind another address
    /// on purpose.
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], service::DEFAULT_PORT)))]
    listen: SocketAddr,
    /// `text` for people, `json` (one object a line) for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Prune runs older than this many days from the history, with their folders (at
    /// start and every hour).
    #[arg(long, value_name = "DAYS")]
    keep_days: Option<u32>,
    /// Prune runs beyond the newest N of each flow likewise.
    #[arg(long, value_name = "N")]
    keep_runs: Option<usize>,
    /// Print a systemd user unit that runs the service, and exit.
    #[arg(long)]
    print_systemd_unit: bool,
    /// For tests: the service's clock starts at this instant…
    #[arg(long, hide = true, value_name = "RFC3339")]
    clock_start: Option<String>,
    /// …and runs this many times as fast as real time.
    #[arg(long, hide = true, default_value_t = 1.0)]
    clock_speed: f64,
    /// How often the flows folder and the activations are looked at again.
    #[arg(long, hide = true, default_value = "2s", value_parser = parse_span)]
    rescan: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `60s`, `2m`, `500ms`, or a number of seconds.
fn parse_span(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a span such as 60s, 2m or 500ms"))?;
    let seconds = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{text}`: write the span in ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

pub fn serve(args: ServeArgs, dirs: Dirs) -> anyhow::Result<u8> {
    let flows = args.flows.clone().unwrap_or_else(|| dirs.flows.clone());
    if args.print_systemd_unit {
        let binary = std::env::current_exe()?;
        let flows = std::path::absolute(&flows)?;
        out_raw!("{}", service::systemd_unit(&binary, &flows, &dirs));
        return Ok(0);
    }
    let clock = match &args.clock_start {
        None => Clock::real(),
        Some(text) => match text.parse() {
            Ok(at) => Clock::test(at, args.clock_speed),
            Err(_) => {
                errln!("--clock-start `{text}` is not an RFC 3339 instant");
                return Ok(INVALID);
            }
        },
    };
    let options = service::Options {
        flows: flows.clone(),
        max_parallel: args.max_parallel,
        grace: args.grace,
        listen: Some(args.listen),
        clock,
        rescan: args.rescan,
        keep_days: args.keep_days,
        keep_runs: args.keep_runs,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            if stop_asked().await {
                tracing::info!("asked to stop");
                on_signal.cancel();
            }
        });
        service::serve(dirs.clone(), options, stop, |addr| {
            let at = addr.map_or(String::new(), |a| {
                format!("; http://{a}/metrics and /healthz")
            });
            tracing::info!("serving the active flows of {}{at}", flows.display());
        })
        .await
    });
    // A run cancelled while it planned may leave a thread waiting on a service: it holds
    // nothing, and the service does not wait for it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => Ok(0),
        Err(e) => {
            errln!("error: {e}");
            Ok(1)
        }
    }
}

/// `tributary activate FLOW`: the service runs it on its trigger from now on.
pub fn activate(path: &Path, dirs: &Dirs) -> anyhow::Result<u8> {
    let flow = match Flow::load(path) {
        Ok(f) => f,
        Err(e) => {
            errln!("{e}");
            return Ok(INVALID);
        }
    };
    let next = match flow.trigger.schedule_of() {
        None if matches!(flow.trigger, Trigger::OnDemand) => {
            errln!(
                "{}: the flow runs on demand, so there is nothing to activate; give it a schedule trigger first",
                path.display()
            );
            return Ok(INVALID);
        }
        None => None,
        Some(Err(e)) => {
            errln!("{}: trigger › {}: {}", path.display(), e.setting, e.message);
            return Ok(INVALID);
        }
        Some(Ok(schedule)) => Some(
            schedule
                .next_after(jiff::Timestamp::now())
                .map(|at| schedule.show(at)),
        ),
    };
    let store = StateStore::open(dirs).map_err(anyhow::Error::msg)?;
    store.activate(&flow.name).map_err(anyhow::Error::msg)?;
    match next {
        Some(Some(at)) => outln!("\"{}\" is active; its next run is at {at}", flow.name),
        Some(None) => outln!(
            "\"{}\" is active, but its schedule has no run left",
            flow.name
        ),
        None => outln!("\"{}\" is active", flow.name),
    }
    match ServiceLock::holder(dirs) {
        None => outln!(
            "no service is running: start it with `tributary serve --flows {}`",
            tributary::workspace::base_dir(path).display()
        ),
        Some(service) => {
            let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            if file.parent() != Some(service.flows.as_path()) {
                outln!(
                    "note: the running service (process {}) runs the flows of {}, and this file is not there",
                    service.pid,
                    service.flows.display()
                );
            }
        }
    }
    Ok(0)
}

/// `tributary deactivate FLOW`: no more runs start; one going ends as it would. FLOW is a
/// flow file, or a flow's name (its file may be gone).
pub fn deactivate(text: &str, dirs: &Dirs) -> anyhow::Result<u8> {
    let path = Path::new(text);
    let name = match path.is_file() {
        true => match Flow::load(path) {
            Ok(f) => f.name,
            Err(e) => {
                errln!("{e}");
                return Ok(INVALID);
            }
        },
        false => text.to_string(),
    };
    let store = StateStore::open(dirs).map_err(anyhow::Error::msg)?;
    match store.activation(&name).map_err(anyhow::Error::msg)? {
        Some(a) if a.active => {
            store.deactivate(&name, None).map_err(anyhow::Error::msg)?;
            outln!("\"{name}\" is inactive: the service starts no more runs of it");
            Ok(0)
        }
        Some(_) => {
            outln!("\"{name}\" was not active");
            Ok(0)
        }
        None => {
            errln!("no flow named \"{name}\" was ever activated, and there is no such file");
            Ok(INVALID)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_in_their_units() {
        assert_eq!(parse_span("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_span("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_span("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_span("5"), Ok(Duration::from_secs(5)));
        assert!(parse_span("soon").is_err());
        assert!(parse_span("5 weeks").is_err());
    }
}
