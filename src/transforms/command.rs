//! Command: hands the records to a program of the user's (any language) as JSON lines on
//! its standard input and takes the records it writes back on its standard output, one
//! JSON object a line. The program is started once per run, in the flow's folder.
//!
//! Both directions are bounded and neither waits on the other: a writer thread feeds the
//! program's input from a queue of two batches, a reader thread takes its output lines
//! into a queue of its own, and while the next batch waits for room the transform keeps
//! taking output. So a program that writes before it has read everything (or only after)
//! never blocks the run, and the run's memory stays bounded whatever the program does.
//! What the program prints on its standard error goes to the run's log.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fields::Problems;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
    TransformContext,
};
use crate::types::FieldType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandTransform {
    /// The program and its arguments, e.g. `["python3", "enrich.py"]`. It runs in the
    /// flow file's folder, so a script beside the flow is found by its name.
    pub command: Vec<String>,
    /// The fields the program adds to the records, with their types, e.g.
    /// `{"score": "number"}`. The records it writes back have the input's fields and
    /// these; a field it leaves out is empty, one it adds and is not named here is left
    /// out.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub fields: IndexMap<String, FieldType>,
    /// The longest the program may go without taking input or giving output while the
    /// run waits on it, and without ending once its input has ended.
    #[serde(default = "sixty")]
    pub timeout_seconds: u64,
}

fn sixty() -> u64 {
    60
}

impl NodeKind for CommandTransform {
    const TYPE: &'static str = "transform.command";
    const TITLE: &'static str = "Command";
    const ICON: &'static str = "⚙";
    const DESCRIPTION: &'static str =
        "Send the records through a program of your own, as JSON lines both ways";
}

impl CommandTransform {
    fn plan(&self, input: &Schema) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        if self.command.first().is_none_or(|p| p.trim().is_empty()) {
            problems.push(
                "/command",
                "name the program to run, e.g. [\"python3\", \"enrich.py\"]",
            );
        }
        if self.timeout_seconds == 0 {
            problems.push("/timeout_seconds", "give the program at least a second");
        }
        let fields = super::with_added_fields(input, &self.fields, "the program", &mut problems);
        problems.into_result(fields)
    }
}

impl NodeConfig for CommandTransform {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan(input.expect("a transform has an input"))
    }

    fn summary(&self) -> String {
        let mut s = self.command.join(" ");
        if !self.fields.is_empty() {
            let names: Vec<&str> = self.fields.keys().map(String::as_str).collect();
            s += &format!(" · adds {}", names.join(", "));
        }
        s
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let output = self.plan(cx.input_schema.as_ref().expect("a transform has an input"))?;
        let shown = self.command.join(" ");
        let mut child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .current_dir(&cx.base_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NodeError::io(format!("cannot start `{shown}`"), e))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");

        let (to_program, queue) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let writer = std::thread::spawn(move || feed(stdin, queue));
        let (lines_out, from_program) = std::sync::mpsc::sync_channel(8192);
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 16, stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        if lines_out.send(Ok(line)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = lines_out.send(Err(e));
                        break;
                    }
                }
            }
        });
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let kept = tail.clone();
        let node = cx.node_id.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                tracing::info!(node = %node, "{line}");
                let mut kept = kept.lock().unwrap();
                if kept.len() == 10 {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        Ok(Runtime::Transform(Box::new(CommandRun {
            shown,
            child,
            to_program: Some(to_program),
            writer: Some(writer),
            from_program,
            stderr: tail,
            stderr_reader,
            output,
            timeout: Duration::from_secs(self.timeout_seconds),
            lines: 0,
            sent: 0,
            received: 0,
        })))
    }
}

/// The writer thread: the queued batches to the program's input, until the queue closes
/// (input ended: the program's input is closed) or the program stops reading.
fn feed(mut stdin: ChildStdin, queue: Receiver<Vec<u8>>) -> std::io::Result<()> {
    for bytes in queue {
        stdin.write_all(&bytes)?;
    }
    stdin.flush()
}

struct CommandRun {
    /// The command line, for messages.
    shown: String,
    child: Child,
    to_program: Option<SyncSender<Vec<u8>>>,
    writer: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    from_program: Receiver<std::io::Result<Vec<u8>>>,
    /// The last lines the program wrote on its standard error, for messages.
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: std::thread::JoinHandle<()>,
    output: SchemaRef,
    timeout: Duration,
    /// Lines read back so far, to name a bad one.
    lines: u64,
    /// Records sent to the program and records it wrote back.
    sent: u64,
    received: u64,
}

impl CommandRun {
    /// Why the program stopped, in words: its exit status and what it said last.
    fn ended(&mut self, what: &str) -> NodeError {
        // A program that stopped early is usually exiting: its status and last words
        // are worth a moment's wait.
        let started = Instant::now();
        let mut status = None;
        while started.elapsed() < Duration::from_secs(1) {
            status = self.child.try_wait().ok().flatten();
            if status.is_some() && self.stderr_reader.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = match status {
            Some(status) => format!(" ({status})"),
            None => String::new(),
        };
        let said: Vec<String> = self.stderr.lock().unwrap().iter().cloned().collect();
        let said = match said.is_empty() {
            true => String::new(),
            false => format!("; it said: {}", said.join(" | ")),
        };
        NodeError::msg(format!("`{}` {what}{status}{said}", self.shown))
    }

    /// Takes the lines the program has written, waiting up to `wait` for the first.
    /// `Ok(false)` when its output has ended.
    fn take(&mut self, lines: &mut Vec<Vec<u8>>, wait: Duration) -> Result<bool, NodeError> {
        let first = match self.from_program.recv_timeout(wait) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => return Ok(true),
            Err(RecvTimeoutError::Disconnected) => return Ok(false),
        };
        let mut next = Some(first);
        while let Some(line) = next.take() {
            let line = line.map_err(|e| {
                NodeError::io(format!("cannot read what `{}` wrote", self.shown), e)
            })?;
            lines.push(line);
            next = match self.from_program.try_recv() {
                Ok(line) => Some(line),
                Err(TryRecvError::Empty) => return Ok(true),
                Err(TryRecvError::Disconnected) => return Ok(false),
            };
        }
        Ok(true)
    }

    /// The program's lines as a batch of the output's fields.
    fn decode(&mut self, lines: Vec<Vec<u8>>) -> Result<RecordBatch, NodeError> {
        let mut decoder = arrow::json::ReaderBuilder::new(self.output.clone())
            .build_decoder()
            .map_err(NodeError::from)?;
        let mut batches = Vec::new();
        for line in &lines {
            self.lines += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let bad = |e: &dyn std::fmt::Display| {
                NodeError::msg(format!(
                    "line {} that `{}` wrote is not a record of the flow's fields ({e}): {}",
                    self.lines,
                    self.shown,
                    crate::records::clip(String::from_utf8_lossy(line).trim_end(), 200)
                ))
            };
            if !line.trim_ascii_start().starts_with(b"{") {
                return Err(bad(&"a record is one JSON object a line"));
            }
            decoder.decode(line).map_err(|e| bad(&e))?;
            // One record per line: a line holding two objects is refused, not split.
            match decoder.len() {
                0 | 1 => {}
                _ => return Err(bad(&"more than one object on the line")),
            }
            if let Some(batch) = decoder.flush().map_err(|e| bad(&e))? {
                batches.push(batch);
            }
        }
        let batch = arrow::compute::concat_batches(&self.output, &batches)?;
        self.received += batch.num_rows() as u64;
        Ok(batch)
    }
}

impl Transform for CommandRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        _cx: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let mut bytes = Vec::with_capacity(batch.get_array_memory_size());
        {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut bytes);
            writer.write(&batch)?;
            writer.finish()?;
        }
        let mut lines = Vec::new();
        let mut progress = Instant::now();
        let mut pending = Some(bytes);
        self.sent += batch.num_rows() as u64;
        let sender = self.to_program.clone().expect("open until finish");
        blocking(|| {
            while let Some(bytes) = pending.take() {
                match sender.try_send(bytes) {
                    Ok(()) => {}
                    Err(TrySendError::Full(bytes)) => {
                        pending = Some(bytes);
                        let before = lines.len();
                        let open = self.take(&mut lines, Duration::from_millis(20))?;
                        if lines.len() > before {
                            progress = Instant::now();
                        } else if !open {
                            return Err(
                                self.ended("stopped writing before it read all the records")
                            );
                        } else if progress.elapsed() > self.timeout {
                            return Err(self.ended(&format!(
                                "neither read records nor wrote any for {} s",
                                self.timeout.as_secs()
                            )));
                        }
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        return Err(
                            self.ended("stopped reading its input before the records ended")
                        );
                    }
                }
            }
            self.take(&mut lines, Duration::ZERO)?;
            Ok(())
        })?;
        self.decode(lines)
    }

    /// Records the program did not write back are counted as dropped (net of those it
    /// added), so that a run's figures still account for every record read.
    fn finish(&mut self, cx: &mut TransformContext) -> Result<Option<RecordBatch>, NodeError> {
        // The program's input ends here.
        self.to_program = None;
        let mut lines = Vec::new();
        let timeout = self.timeout;
        blocking(|| {
            let mut progress = Instant::now();
            loop {
                let before = lines.len();
                let open = self.take(&mut lines, Duration::from_millis(50))?;
                if !open {
                    break;
                }
                if lines.len() > before {
                    progress = Instant::now();
                } else if progress.elapsed() > timeout {
                    return Err(self.ended(&format!(
                        "wrote nothing for {} s after its input ended, and did not end",
                        timeout.as_secs()
                    )));
                }
            }
            if let Some(Err(e)) = self
                .writer
                .take()
                .map(|w| w.join().expect("the writer ends"))
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(NodeError::io(
                    format!("cannot write to `{}`", self.shown),
                    e,
                ));
            }
            let started = Instant::now();
            let status = loop {
                match self.child.try_wait() {
                    Ok(Some(status)) => break status,
                    Ok(None) if started.elapsed() > timeout => {
                        return Err(self.ended(&format!(
                            "closed its output but did not end within {} s",
                            timeout.as_secs()
                        )));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    Err(e) => {
                        return Err(NodeError::io(
                            format!("cannot wait for `{}`", self.shown),
                            e,
                        ));
                    }
                }
            };
            if !status.success() {
                return Err(self.ended("failed"));
            }
            Ok(())
        })?;
        let batch = self.decode(lines)?;
        cx.dropped += self.sent.saturating_sub(self.received);
        Ok((batch.num_rows() > 0).then_some(batch))
    }
}

/// Runs `f`, which waits on the program, telling a multi-threaded Tokio runtime that this
/// worker blocks so that its other tasks move elsewhere.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A run that fails or is cancelled leaves no program behind.
impl Drop for CommandRun {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
