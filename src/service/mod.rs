//! `tributary serve`: runs every active flow of a folder on its trigger, headless.
//!
//! The service is one loop that sleeps until the next thing it has to do: a run time, a
//! retry, a run ending, or its look at the folder (every `rescan`, for edited flow files
//! and flows activated or deactivated from the app or the command line). Idle, it wakes
//! once per `rescan` and reads a few file dates and one table.
//!
//! What it owes between starts lives in the state database: which flows are active, the
//! last run time it acted on (to tell runs missed while it was down), and failures in a
//! row (to deactivate a flow that keeps failing). Each run is an ordinary run of the
//! engine, with its record and history entry saying what started it.

mod alerts;
mod clock;
mod files;
mod hooks;
mod listen;
mod metrics;
mod poll;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use indexmap::IndexMap;
use jiff::Timestamp;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::{self, RunError, RunOptions, RunRecord, RunStatus};
use crate::flow::schedule::Schedule;
use crate::flow::{AlertOn, Event, Flow, Missed, PullMode, Trigger, WhenRunning};
use crate::node::Discovery;
use crate::paths::Dirs;
use crate::state::{ServiceInfo, ServiceLock, StateStore};
use crate::workspace::{self, Workspace};

pub use clock::Clock;
use metrics::Metrics;

/// The loopback port the service answers on unless told another.
pub const DEFAULT_PORT: u16 = 7467;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The folder whose flow files it runs.
    pub flows: PathBuf,
    /// Runs going at once, over all flows.
    pub max_parallel: usize,
    /// How long running runs may take to finish once the service is asked to stop.
    pub grace: Duration,
    /// Where `/healthz` and `/metrics` answer; none for no endpoint.
    pub listen: Option<SocketAddr>,
    pub clock: Clock,
    /// How often the folder and the activations are looked at again.
    pub rescan: Duration,
    /// Runs older than this many days are pruned from the history, with their folders,
    /// at start and every hour.
    pub keep_days: Option<u32>,
    /// Runs beyond the newest this many of each flow are pruned likewise.
    pub keep_runs: Option<usize>,
}

/// What started, or is to start, a run.
#[derive(Debug, Clone, Default)]
struct Start {
    /// What the run record says started it.
    cause: String,
    /// Tries made before this one.
    retries: u32,
    /// Parameters the event gives the run (`trigger_file`…).
    params: IndexMap<String, String>,
}

/// One flow file the service watches.
struct Watched {
    modified: Option<SystemTime>,
    /// The last version of the file that was a valid flow: what runs.
    flow: Arc<Flow>,
    schedule: Option<Schedule>,
    /// Why the file as it is on disk is not what runs, once said.
    refused: Option<String>,
    active: bool,
    next: Option<Timestamp>,
    running: bool,
    /// Starts that wait, for the flow's running run or for a free slot: at most one of its
    /// schedule (the next run reads all that is new), every event (each is its own run).
    waiting: VecDeque<Start>,
    retry: Option<(Timestamp, Start)>,
    /// The watched folder of an active flow with a file trigger.
    files: Option<files::FileWatch>,
    /// When it was activated, as the state says.
    activated: Option<SystemTime>,
    /// When an S3 event trigger lists its prefix next; none while a listing is going.
    poll: Option<Timestamp>,
}

/// What a polling event trigger's question found.
enum Polled {
    S3(Result<poll::Listing, String>),
    /// Records changed since the last question, asked at `asked`.
    Salesforce {
        asked: Timestamp,
        changed: Result<u64, String>,
    },
}

/// A run that ended: which file, what started it, its record.
type Ended = (PathBuf, Start, RunRecord);

struct Service {
    dirs: Dirs,
    /// What planning learnt of services, shared by the runs of every flow.
    discovery: Discovery,
    options: Options,
    store: StateStore,
    metrics: Arc<Metrics>,
    watched: BTreeMap<PathBuf, Watched>,
    /// Files that are not flows, with the date they were found so, to say so once.
    broken: HashMap<PathBuf, Option<SystemTime>>,
    /// Flows with starts waiting, first come first served.
    queue: VecDeque<PathBuf>,
    runs: JoinSet<Ended>,
    /// Cancels every run: after the grace period of a stop.
    cancel_runs: CancellationToken,
    stopping: bool,
    /// Webhook signatures taken in the last five minutes, to refuse a replay.
    signatures: HashMap<String, Instant>,
    /// Polling event triggers' questions going.
    polls: JoinSet<(PathBuf, Polled)>,
    /// File notifications name the flow file whose folder changed.
    file_events: tokio::sync::mpsc::UnboundedSender<PathBuf>,
}

/// Runs the service until `stop` is cancelled; then lets runs finish within the grace
/// period and cancels the rest. `started` hears the endpoint's address once it listens.
pub async fn serve(
    dirs: Dirs,
    options: Options,
    stop: CancellationToken,
    started: impl FnOnce(Option<SocketAddr>),
) -> Result<(), String> {
    std::fs::create_dir_all(&options.flows)
        .map_err(|e| format!("cannot create {}: {e}", options.flows.display()))?;
    let endpoint = match options.listen {
        Some(addr) => Some(listen::bind(addr).await?),
        None => None,
    };
    let info = ServiceInfo {
        pid: std::process::id(),
        flows: std::path::absolute(&options.flows).unwrap_or_else(|_| options.flows.clone()),
        listen: endpoint.as_ref().map(|(_, a)| a.to_string()),
    };
    let _lock = ServiceLock::take(&dirs, &info)?;
    let store = StateStore::open(&dirs)?;
    let metrics = Arc::new(Metrics::new());
    let stop_endpoint = CancellationToken::new();
    let _stop_endpoint = stop_endpoint.clone().drop_guard();
    let (hooks, hooks_in) = tokio::sync::mpsc::channel(64);
    let (file_events, file_events_in) = tokio::sync::mpsc::unbounded_channel();
    if let Some((listener, _)) = endpoint {
        tokio::spawn(listen::serve(
            listener,
            metrics.clone(),
            hooks,
            stop_endpoint.clone(),
        ));
    }
    started(info.listen.as_ref().and_then(|a| a.parse().ok()));
    let mut service = Service {
        dirs,
        discovery: Discovery::default(),
        options,
        store,
        metrics,
        watched: BTreeMap::new(),
        broken: HashMap::new(),
        queue: VecDeque::new(),
        runs: JoinSet::new(),
        cancel_runs: CancellationToken::new(),
        stopping: false,
        signatures: HashMap::new(),
        polls: JoinSet::new(),
        file_events,
    };
    service.run(stop, hooks_in, file_events_in).await;
    Ok(())
}

impl Service {
    async fn run(
        &mut self,
        stop: CancellationToken,
        mut hooks: tokio::sync::mpsc::Receiver<listen::Hook>,
        mut file_events: tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
    ) {
        let mut next_scan = Instant::now();
        let mut next_prune = Instant::now();
        loop {
            if Instant::now() >= next_scan {
                self.scan();
                next_scan = Instant::now() + self.options.rescan;
            }
            if Instant::now() >= next_prune {
                next_prune = Instant::now() + Duration::from_secs(3600);
                self.prune();
            }
            self.start_due();
            let wake = self
                .next_wake()
                .min(next_scan - Instant::now().min(next_scan));
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wake) => {}
                Some(hook) = hooks.recv() => self.hook(hook),
                Some(flow) = file_events.recv() => self.look_for_files(&flow),
                Some(Ok((flow, polled))) = self.polls.join_next(), if !self.polls.is_empty() => {
                    self.listed(&flow, polled);
                }
                Some(ended) = self.runs.join_next(), if !self.runs.is_empty() => {
                    match ended {
                        Ok(ended) => self.ended(ended),
                        Err(e) => tracing::error!("a run stopped unexpectedly: {e}"),
                    }
                }
            }
        }
        self.shut_down().await;
    }

    /// Prunes the history as the service was told to, in the background.
    fn prune(&self) {
        let (days, runs) = (self.options.keep_days, self.options.keep_runs);
        if days.is_none() && runs.is_none() {
            return;
        }
        let dirs = self.dirs.clone();
        tokio::task::spawn_blocking(move || match engine::prune(&dirs, days, runs, None) {
            Ok(p) if p.removed > 0 => tracing::info!(
                removed = p.removed,
                kept = p.kept,
                "old runs pruned ({})",
                engine::human_bytes(p.bytes)
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("old runs could not be pruned: {e}"),
        });
    }

    /// Takes no new runs; lets the running ones finish within the grace period, then
    /// cancels them. A cancelled run publishes nothing and keeps its watermarks.
    async fn shut_down(&mut self) {
        self.stopping = true;
        if !self.runs.is_empty() {
            tracing::info!(
                running = self.runs.len(),
                "stopping: waiting up to {}s for running runs to finish",
                self.options.grace.as_secs()
            );
        }
        let grace = tokio::time::sleep(self.options.grace);
        tokio::pin!(grace);
        while !self.runs.is_empty() {
            tokio::select! {
                _ = &mut grace, if !self.cancel_runs.is_cancelled() => {
                    tracing::warn!(running = self.runs.len(), "the grace period is over: cancelling the runs still going");
                    self.cancel_runs.cancel();
                }
                Some(ended) = self.runs.join_next() => {
                    if let Ok(ended) = ended {
                        self.ended(ended);
                    }
                }
            }
        }
        tracing::info!("stopped");
    }

    /// How long the loop may sleep: until the earliest run time, retry, or file that
    /// will have settled.
    fn next_wake(&self) -> Duration {
        let clock = self.options.clock;
        let now = Instant::now();
        self.watched
            .values()
            .filter(|w| w.active)
            .flat_map(|w| {
                let times = w
                    .next
                    .into_iter()
                    .chain(w.retry.as_ref().map(|r| r.0))
                    .chain(w.poll);
                let settle = w.files.as_ref().and_then(|f| f.next_settle());
                times
                    .map(move |at| clock.real_until(at))
                    .chain(settle.map(|at| at.saturating_duration_since(now)))
            })
            .min()
            .unwrap_or(Duration::from_secs(3600))
    }

    /// Lists the watched folder of the flow file `path`.
    fn look_for_files(&mut self, path: &Path) {
        if let Some(w) = self.watched.get_mut(path)
            && let Some(files) = &mut w.files
        {
            files.look(&w.flow.name, &self.store);
        }
    }

    /// A polling event trigger's question came back: a run starts when something is new
    /// since the last one (or, the first time, since the flow was activated).
    fn listed(&mut self, path: &Path, polled: Polled) {
        let now = self.options.clock.now();
        let Some(w) = self.watched.get_mut(path) else {
            return;
        };
        let (place, interval) = match &w.flow.trigger {
            Trigger::Event(Event::S3 {
                bucket,
                prefix,
                interval_seconds,
                ..
            }) => (
                format!("s3://{bucket}/{prefix}"),
                interval_seconds.unwrap_or(60).max(10),
            ),
            Trigger::Event(Event::Salesforce {
                connection,
                object,
                interval_seconds,
            }) => (
                format!("salesforce:{connection}/{object}"),
                interval_seconds.unwrap_or(60).max(60),
            ),
            _ => return,
        };
        if !w.active {
            return;
        }
        w.poll = Some(now + jiff::SignedDuration::from_secs(interval as i64));
        let name = w.flow.name.clone();
        let activated = w.activated.map_or(0, |at| {
            at.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64)
        });
        let news = match polled {
            Polled::S3(Err(e))
            | Polled::Salesforce {
                changed: Err(e), ..
            } => {
                tracing::warn!(flow = %name, "cannot look at {place}: {e}; trying again in {interval}s");
                return;
            }
            Polled::S3(Ok(listing)) => {
                let earlier = match self.store.taken_file(&name, &place) {
                    Ok(e) => e.map(|(objects, newest)| poll::Listing { objects, newest }),
                    Err(e) => {
                        tracing::warn!(flow = %name, "{e}");
                        return;
                    }
                };
                if let Err(e) = self
                    .store
                    .take_file(&name, &place, listing.objects, listing.newest)
                {
                    tracing::warn!(flow = %name, "{e}");
                    return;
                }
                match earlier {
                    Some(earlier) => listing.has_news_since(earlier),
                    // The first listing: only what came after the activation is new.
                    None => listing.newest > activated,
                }
            }
            Polled::Salesforce {
                asked,
                changed: Ok(changed),
            } => {
                // The next question starts where this one was asked.
                let asked = asked.as_nanosecond() as i64;
                if let Err(e) = self.store.take_file(&name, &place, changed, asked) {
                    tracing::warn!(flow = %name, "{e}");
                    return;
                }
                changed > 0
            }
        };
        if news {
            let start = Start {
                cause: format!("event: {place}"),
                ..Default::default()
            };
            self.start(path, start);
        }
    }

    /// Starts (or stops) watching the folder of an active flow with a file trigger.
    fn watch_files(&mut self, path: &Path) {
        let Some(w) = self.watched.get_mut(path) else {
            return;
        };
        w.files = None;
        let Trigger::Event(Event::File {
            folder,
            pattern,
            settle_seconds,
        }) = &w.flow.trigger
        else {
            return;
        };
        if !w.active {
            return;
        }
        let folder = workspace::base_dir(path).join(folder);
        let settle = Duration::from_secs(settle_seconds.unwrap_or(2));
        let activated = w.activated.unwrap_or_else(SystemTime::now);
        match files::FileWatch::new(
            folder,
            pattern.as_deref(),
            settle,
            activated,
            path.to_path_buf(),
            self.file_events.clone(),
        ) {
            Ok(mut watch) => {
                watch.look(&w.flow.name, &self.store);
                w.files = Some(watch);
            }
            Err(e) => tracing::warn!(flow = %w.flow.name, "{e}"),
        }
    }

    /// Looks at the folder and the activations again.
    fn scan(&mut self) {
        let folder = self.options.flows.clone();
        let mut present = Vec::new();
        match std::fs::read_dir(&folder) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_some_and(|e| e == "json") && path.is_file() {
                        present.push(path);
                    }
                }
            }
            Err(e) => tracing::warn!("cannot read the flows folder {}: {e}", folder.display()),
        }
        present.sort();
        // Files gone: their flows stop (a run going ends first).
        let gone: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            if !self.watched[&path].running {
                let w = self.watched.remove(&path).expect("watched");
                self.metrics.next_run(&w.flow.name, None);
                tracing::info!(flow = %w.flow.name, "{} is gone: the flow no longer runs", path.display());
            }
        }
        self.broken.retain(|p, _| present.contains(p));
        for path in present {
            self.look_at(path);
        }
        self.activations();
        let watching: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(_, w)| w.files.is_some())
            .map(|(p, _)| p.clone())
            .collect();
        for path in watching {
            self.look_for_files(&path);
        }
    }

    /// Reads a flow file that is new or changed since last time.
    fn look_at(&mut self, path: PathBuf) {
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if let Some(w) = self.watched.get(&path)
            && w.modified == modified
        {
            return;
        }
        if self.broken.get(&path) == Some(&modified) {
            return;
        }
        let loaded = Flow::load(&path).map_err(|e| e.to_string()).and_then(|flow| {
            let schedule = match flow.trigger.schedule_of() {
                Some(Err(e)) => {
                    return Err(format!(
                        "{}: trigger › {}: {}",
                        path.display(),
                        e.setting,
                        e.message
                    ));
                }
                Some(Ok(s)) => Some(s),
                None => None,
            };
            match self
                .watched
                .iter()
                .find(|(p, w)| **p != path && w.flow.name == flow.name)
            {
                Some((other, _)) => Err(format!(
                    "{}: the flow \"{}\" is already in {}; a flow's name is what its history and state are kept by, so each file needs its own",
                    path.display(),
                    flow.name,
                    other.display()
                )),
                None => Ok((flow, schedule)),
            }
        });
        match (loaded, self.watched.get_mut(&path)) {
            (Ok((flow, schedule)), Some(w)) => {
                if w.flow.name != flow.name {
                    // Renamed: its activation is another flow's.
                    self.metrics.next_run(&w.flow.name, None);
                    w.active = false;
                    w.next = None;
                }
                tracing::info!(flow = %flow.name, "{} changed: the new version runs from now on", path.display());
                let rescheduled = w.schedule.is_some() || schedule.is_some();
                w.flow = Arc::new(flow);
                w.schedule = schedule;
                w.modified = modified;
                w.refused = None;
                if rescheduled && w.active {
                    w.next = w
                        .schedule
                        .as_ref()
                        .and_then(|s| s.next_after(self.options.clock.now()));
                    self.metrics.next_run(&w.flow.name, w.next);
                }
                // An edit may have changed what the flow polls, or made it stop polling.
                let polls = matches!(
                    w.flow.trigger,
                    Trigger::Event(Event::S3 { .. } | Event::Salesforce { .. })
                );
                w.poll = (polls && w.active).then(|| self.options.clock.now());
                self.watch_files(&path);
            }
            (Ok((flow, schedule)), None) => {
                self.broken.remove(&path);
                self.watched.insert(
                    path,
                    Watched {
                        modified,
                        flow: Arc::new(flow),
                        schedule,
                        refused: None,
                        active: false,
                        next: None,
                        running: false,
                        waiting: VecDeque::new(),
                        retry: None,
                        files: None,
                        activated: None,
                        poll: None,
                    },
                );
            }
            (Err(why), Some(w)) => {
                w.modified = modified;
                tracing::warn!(flow = %w.flow.name, "{why}; the last valid version keeps running until the file is fixed");
                w.refused = Some(why);
            }
            (Err(why), None) => {
                tracing::warn!("{why}; the file is left out until it is fixed");
                self.broken.insert(path, modified);
            }
        }
    }

    /// Takes in flows activated or deactivated since the last look.
    fn activations(&mut self) {
        let activations = match self.store.activations() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("cannot read which flows are active: {e}");
                return;
            }
        };
        let now = self.options.clock.now();
        let mut newly = Vec::new();
        let mut watch = Vec::new();
        for (path, w) in &mut self.watched {
            let activation = activations.iter().find(|a| a.flow == w.flow.name);
            let active = activation.is_some_and(|a| a.active);
            if active == w.active {
                continue;
            }
            w.active = active;
            w.activated = activation
                .and_then(|a| a.changed_at.parse::<Timestamp>().ok())
                .map(SystemTime::from);
            if !active {
                tracing::info!(flow = %w.flow.name, "deactivated: no more runs start");
                w.next = None;
                w.retry = None;
                w.waiting.clear();
                w.files = None;
                w.poll = None;
                self.metrics.next_run(&w.flow.name, None);
                continue;
            }
            if matches!(w.flow.trigger, Trigger::Event(Event::File { .. })) {
                watch.push(path.clone());
            }
            if matches!(
                w.flow.trigger,
                Trigger::Event(Event::S3 { .. } | Event::Salesforce { .. })
            ) {
                w.poll = Some(now);
            }
            if matches!(w.flow.trigger, Trigger::OnDemand) {
                continue;
            }
            w.next = w.schedule.as_ref().and_then(|s| s.next_after(now));
            self.metrics.next_run(&w.flow.name, w.next);
            let next_run = match (&w.schedule, w.next) {
                (Some(s), Some(at)) => s.show(at),
                _ => "none".into(),
            };
            tracing::info!(flow = %w.flow.name, next_run, "active");
            let last_due = activation
                .and_then(|a| a.last_due.as_deref())
                .and_then(|t| t.parse::<Timestamp>().ok());
            if let (Some(schedule), Some(last)) = (&w.schedule, last_due) {
                newly.push((path.clone(), missed(schedule, last, now)));
            }
        }
        let count = self.watched.values().filter(|w| w.active).count();
        self.metrics.set_active(count);
        for (path, missed) in newly {
            self.after_downtime(&path, missed);
        }
        for path in watch {
            self.watch_files(&path);
        }
    }

    /// Runs missed while the service was down: one run for all of them, or a skipped
    /// entry in the history, as the flow's `missed` setting says.
    fn after_downtime(&mut self, path: &Path, missed: Option<(usize, Timestamp)>) {
        let Some((count, latest)) = missed else {
            return;
        };
        let w = &self.watched[path];
        let (name, policy) = (w.flow.name.clone(), w.flow.service.missed);
        let shown = w
            .schedule
            .as_ref()
            .map_or(latest.to_string(), |s| s.show(latest));
        let times = match count {
            1 => "1 run time".to_string(),
            n if n >= MISSED_COUNTED => format!("{n} or more run times"),
            n => format!("{n} run times"),
        };
        match self.store.claim_due(&name, &latest.to_string()) {
            Ok(true) => {}
            // A service sharing the state caught up on them already.
            Ok(false) => return,
            Err(e) => tracing::warn!(flow = %name, "cannot keep the run time acted on: {e}"),
        }
        match policy {
            Missed::RunOnce => {
                tracing::info!(flow = %name, "{times} passed while the service was down: running once for them");
                self.start(
                    path,
                    Start {
                        cause: format!("schedule: missed, due {shown}"),
                        ..Default::default()
                    },
                );
            }
            Missed::Skip => {
                let reason = format!(
                    "{times} passed while the service was down, the last due {shown}; the flow's `missed` setting is `skip`"
                );
                self.skip(path, "schedule: missed".into(), reason);
            }
        }
    }

    /// Starts the runs whose time has come, and retries whose wait is over.
    fn start_due(&mut self) {
        if self.stopping {
            return;
        }
        let now = self.options.clock.now();
        let mut due = Vec::new();
        for (path, w) in &mut self.watched {
            if !w.active {
                continue;
            }
            if let Some(files) = &mut w.files {
                for file in files.settled(&w.flow.name, &self.store) {
                    let start = Start {
                        cause: format!("event: file {}", file.display()),
                        params: IndexMap::from([(
                            "trigger_file".to_string(),
                            file.display().to_string(),
                        )]),
                        ..Default::default()
                    };
                    due.push((path.clone(), start, None));
                }
            }
            if let Some(at) = w.poll
                && at <= now
            {
                w.poll = None;
                let path = path.clone();
                match w.flow.trigger.clone() {
                    Trigger::Event(Event::S3 {
                        connection,
                        bucket,
                        prefix,
                        region,
                        endpoint_url,
                        ..
                    }) => {
                        let dirs = self.dirs.clone();
                        self.polls.spawn(async move {
                            let listing = poll::list(
                                &dirs,
                                connection.as_deref(),
                                region.as_deref(),
                                endpoint_url.as_deref(),
                                &bucket,
                                &prefix,
                            )
                            .await;
                            (path, Polled::S3(listing))
                        });
                    }
                    Trigger::Event(Event::Salesforce {
                        connection, object, ..
                    }) => {
                        let place = format!("salesforce:{connection}/{object}");
                        // Since the last question, or the activation the first time.
                        let since = match self.store.taken_file(&w.flow.name, &place) {
                            Ok(Some((_, nanos))) => Timestamp::from_nanosecond(nanos as i128).ok(),
                            _ => w.activated.and_then(|at| Timestamp::try_from(at).ok()),
                        }
                        .unwrap_or_else(Timestamp::now);
                        let dirs = self.dirs.clone();
                        self.polls.spawn(async move {
                            let asked = Timestamp::now();
                            let changed =
                                poll::salesforce(&dirs, &connection, &object, since).await;
                            (path, Polled::Salesforce { asked, changed })
                        });
                    }
                    _ => {}
                }
            }
            if let Some((at, _)) = &w.retry
                && *at <= now
            {
                let (_, start) = w.retry.take().expect("a retry");
                due.push((path.clone(), start, None));
            }
            if let (Some(at), Some(schedule)) = (w.next, &w.schedule)
                && at <= now
            {
                // Run times that passed meanwhile (the machine slept) make one run.
                w.next = schedule.next_after(now.max(at));
                self.metrics.next_run(&w.flow.name, w.next);
                let start = Start {
                    cause: format!("schedule: due {}", schedule.show(at)),
                    ..Default::default()
                };
                due.push((path.clone(), start, Some(at)));
            }
        }
        for (path, start, at) in due {
            if let Some(at) = at {
                let name = self.watched[&path].flow.name.clone();
                match self.store.claim_due(&name, &at.to_string()) {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(flow = %name, "run time {at} was started by another service sharing the state");
                        continue;
                    }
                    // The state out of reach: the run itself will say so.
                    Err(e) => {
                        tracing::warn!(flow = %name, "cannot keep the run time acted on: {e}")
                    }
                }
            }
            self.start(&path, start);
        }
    }

    /// A trigger fired for the flow of `path`.
    fn start(&mut self, path: &Path, start: Start) {
        let Some(w) = self.watched.get_mut(path) else {
            return;
        };
        let busy = w.running || !w.waiting.is_empty();
        if busy && w.flow.service.when_running == WhenRunning::Skip {
            let reason = "the flow was still running, and its `when_running` setting is `skip`";
            self.skip(path, start.cause, reason.into());
            return;
        }
        if !busy && self.runs.len() < self.options.max_parallel.max(1) {
            self.launch(path, start);
            return;
        }
        let scheduled = |s: &Start| s.cause.starts_with("schedule");
        match w.waiting.iter_mut().find(|s| scheduled(s)) {
            Some(earlier) if scheduled(&start) => {
                tracing::info!(flow = %w.flow.name, "{} is taken over by a later trigger", earlier.cause);
                *earlier = start;
            }
            _ => w.waiting.push_back(start),
        }
        if !self.queue.iter().any(|p| p == path) {
            self.queue.push_back(path.to_path_buf());
        }
    }

    /// Starts waiting runs while slots are free, flows in the order they began waiting;
    /// a flow still running keeps its place.
    fn dispatch(&mut self) {
        let mut i = 0;
        while i < self.queue.len() && self.runs.len() < self.options.max_parallel.max(1) {
            let path = self.queue[i].clone();
            let Some(w) = self.watched.get_mut(&path) else {
                self.queue.remove(i);
                continue;
            };
            if w.running {
                i += 1;
                continue;
            }
            let Some(start) = w.waiting.pop_front() else {
                self.queue.remove(i);
                continue;
            };
            self.queue.remove(i);
            if !w.waiting.is_empty() {
                self.queue.push_back(path.clone());
            }
            self.launch(&path, start);
        }
    }

    /// Starts a run now.
    fn launch(&mut self, path: &Path, start: Start) {
        let Some(w) = self.watched.get_mut(path) else {
            return;
        };
        w.running = true;
        let flow = w.flow.clone();
        let base = workspace::base_dir(path);
        let mut options = RunOptions::new(self.dirs.clone());
        options.cancel = self.cancel_runs.child_token();
        options.trigger = start.cause.clone();
        options.full = matches!(
            flow.trigger,
            Trigger::Schedule {
                pull_mode: PullMode::Complete,
                ..
            }
        );
        self.metrics.started(&flow.name);
        tracing::info!(flow = %flow.name, trigger = %start.cause, "run starts");
        let workspace = Workspace {
            dirs: self.dirs.clone(),
            discovery: self.discovery.clone(),
        };
        let path = path.to_path_buf();
        let params = start.params.clone();
        self.runs.spawn(async move {
            // Planning may wait on a service (a source learning its fields): a stop
            // past the grace period does not wait for it.
            let cancel = options.cancel.clone();
            let planning = {
                let (flow, base) = (flow.clone(), base.clone());
                tokio::task::spawn_blocking(move || {
                    workspace::plan_flow(&flow, &base, &params, &workspace)
                })
            };
            let planned = tokio::select! {
                planned = planning => planned,
                _ = cancel.cancelled() => {
                    let record = engine::canceled_before_start(&flow, &base, options);
                    return (path, start, record);
                }
            };
            let record = match planned {
                Ok(Ok(plan)) => engine::run(&plan, options).await,
                Ok(Err(problems)) => {
                    // A service that could not be reached or refused while the run learnt
                    // its fields may answer later; a flow that is wrong will not.
                    let transient = problems.iter().all(|p| p.service);
                    let first = &problems[0];
                    let error = RunError {
                        node: first.node.clone(),
                        message: problems
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join("; "),
                        transient,
                    };
                    engine::failed_to_start(&flow, &base, error, options)
                }
                Err(e) => {
                    let error = RunError {
                        node: None,
                        message: format!("planning the run stopped unexpectedly: {e}"),
                        transient: false,
                    };
                    engine::failed_to_start(&flow, &base, error, options)
                }
            };
            (path, start, record)
        });
    }

    /// Records that a trigger did not start a run, and why.
    fn skip(&mut self, path: &Path, cause: String, reason: String) {
        let Some(w) = self.watched.get(path) else {
            return;
        };
        let mut options = RunOptions::new(self.dirs.clone());
        options.trigger = cause;
        tracing::info!(flow = %w.flow.name, "run skipped: {reason}");
        let record = engine::skipped(&w.flow, &workspace::base_dir(path), reason, options);
        self.metrics.ended(&record);
    }

    /// A run ended: retry, count a failure, deactivate, or start what waited for it.
    fn ended(&mut self, (path, start, record): Ended) {
        self.metrics.ended(&record);
        let now = self.options.clock.now();
        let name = record.flow.clone();
        let Some(w) = self.watched.get_mut(&path) else {
            // Its slot is free for the others all the same.
            if !self.stopping {
                self.dispatch();
            }
            return;
        };
        w.running = false;
        let settings = w.flow.service.clone();
        match record.status {
            RunStatus::Successful => {
                tracing::info!(flow = %name, run = %record.execution_id, records = record.records_written, "run succeeded");
                alerts::send(&self.dirs, &w.flow.alerts, AlertOn::Success, &record, None);
                if let Err(e) = self.store.clear_failures(&name) {
                    tracing::warn!(flow = %name, "{e}");
                }
            }
            RunStatus::Error if !self.stopping => {
                let error = record.error.clone().unwrap_or(RunError {
                    node: None,
                    message: "the run failed".into(),
                    transient: false,
                });
                tracing::warn!(flow = %name, run = %record.execution_id, node = ?error.node, "run failed: {}", error.message);
                if error.transient && start.retries < settings.retries && w.active {
                    let wait = settings
                        .retry_after_seconds
                        .saturating_mul(1 << start.retries.min(16));
                    let at = now + jiff::SignedDuration::from_secs(wait as i64);
                    let first = start.cause.split(", retry").next().unwrap_or_default();
                    let retry = Start {
                        cause: format!(
                            "{first}, retry {} of {}",
                            start.retries + 1,
                            settings.retries
                        ),
                        retries: start.retries + 1,
                        params: start.params.clone(),
                    };
                    tracing::info!(flow = %name, "the failure may pass: trying again in {wait}s");
                    w.retry = Some((at, retry));
                } else {
                    alerts::send(&self.dirs, &w.flow.alerts, AlertOn::Failure, &record, None);
                    self.failed(&path, &error, &record);
                }
            }
            RunStatus::Error | RunStatus::Canceled | RunStatus::Skipped => {}
        }
        if self.stopping {
            return;
        }
        self.dispatch();
    }

    /// Counts a failed run (after its retries) and deactivates a flow that failed too
    /// often in a row.
    fn failed(&mut self, path: &Path, error: &RunError, record: &RunRecord) {
        let w = &self.watched[path];
        let (name, limit) = (w.flow.name.clone(), w.flow.service.deactivate_after);
        let failures = match self.store.count_failure(&name) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(flow = %name, "{e}");
                return;
            }
        };
        if limit == 0 || failures < limit {
            return;
        }
        let reason = format!(
            "deactivated after {failures} failed runs in a row; the last: {}",
            error.message
        );
        tracing::error!(flow = %name, "{reason}");
        if let Err(e) = self.store.deactivate(&name, Some(&reason)) {
            tracing::warn!(flow = %name, "{e}");
        }
        let alerts = &self.watched[path].flow.alerts;
        alerts::send(
            &self.dirs,
            alerts,
            AlertOn::Deactivation,
            record,
            Some(&reason),
        );
        let w = self.watched.get_mut(path).expect("watched");
        w.active = false;
        w.next = None;
        w.retry = None;
        w.files = None;
        self.metrics.next_run(&name, None);
    }
}

/// Past this many missed run times, the count says "or more".
const MISSED_COUNTED: usize = 10_000;

/// The run times after `last` up to `now`: how many, and the latest.
fn missed(schedule: &Schedule, last: Timestamp, now: Timestamp) -> Option<(usize, Timestamp)> {
    let mut count = 0;
    let mut latest = None;
    let mut at = last;
    while let Some(next) = schedule.next_after(at) {
        if next > now || count >= MISSED_COUNTED {
            break;
        }
        count += 1;
        latest = Some(next);
        at = next;
    }
    latest.map(|l| (count, l))
}

/// A systemd user unit that runs the service (`~/.config/systemd/user/tributary.service`).
pub fn systemd_unit(binary: &Path, flows: &Path, dirs: &Dirs) -> String {
    format!(
        "[Unit]
Description=Tributary: runs the active flows of {flows}
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={binary} serve --flows {flows}
Environment=TRIBUTARY_LOG=info
# Set the vault passphrase for flows whose connections keep secrets, in a file only you
# can read: EnvironmentFile=%h/.config/tributary/service.env
# holding TRIBUTARY_VAULT_PASSPHRASE=…
Restart=on-failure
RestartSec=10
# Running runs get this long to finish when the service stops; keep it above --grace.
TimeoutStopSec=90

[Install]
WantedBy=default.target
# The state it keeps: {data}
",
        binary = binary.display(),
        flows = flows.display(),
        data = dirs.data.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_run_times_are_counted_up_to_now() {
        let schedule = Schedule::new("rate(1 hours)", None, None, None).unwrap();
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        assert_eq!(
            missed(
                &schedule,
                at("2026-12-02T08:00:00Z"),
                at("2026-12-02T08:59:00Z")
            ),
            None
        );
        assert_eq!(
            missed(
                &schedule,
                at("2026-12-02T08:00:00Z"),
                at("2026-12-02T11:30:00Z")
            ),
            Some((3, at("2026-12-02T11:00:00Z")))
        );
    }
}
