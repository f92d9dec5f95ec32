//! Encoding is most of what writing files costs (Parquet's encodings and zstd), so a run's
//! open files are encoded on a pool of threads, one per core: a run that writes several
//! files at once (partitions) keeps every core busy instead of one.
//!
//! Each file keeps its own queue of writes, and a file is encoded by one thread at a time,
//! batch after batch in the order they came, so every file holds the same bytes as if one
//! thread had written them all. Any free thread takes the next file that has work: a thread
//! never idles while another file waits behind a busy one, and the destination waits only
//! when the whole pool is behind. (Files pinned to threads left one thread idle while the
//! destination waited for room on the other: the destination spent 60% of a run waiting.)

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;

use crate::codecs::FileWriter;
use crate::node::NodeError;

/// Writes that may wait in the queues, per thread: a few keep every thread busy while the
/// destination splits the next batch; every one holds a part of a batch, so they are few.
const QUEUED_PER_THREAD: usize = 2;

/// An open file, as the destination knows it while threads encode it.
pub struct Encoding {
    id: u64,
    /// What the file will have when its writes so far are encoded.
    size: Arc<AtomicU64>,
}

impl Encoding {
    /// The file's size as far as its writes are encoded.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }
}

/// A file's last write, for those who must know its size after it before going on.
pub struct Written(Receiver<()>);

impl Written {
    /// Waits until the write is encoded (or has failed: the failure comes from
    /// [`Encoders::next_done`]).
    pub fn wait(self) {
        let _ = self.0.recv();
    }
}

enum Job {
    Write {
        batch: RecordBatch,
        written: Option<SyncSender<()>>,
    },
    Close,
}

/// What a thread tells the destination.
pub enum Done<W> {
    /// A file closed: its sink and its size.
    Closed { id: u64, sink: W, bytes: u64 },
    /// A write or close failed; the pool drops its files and ignores the rest.
    Failed(NodeError),
}

struct File<W: Write + Send> {
    /// `None` while a thread encodes into it.
    writer: Option<FileWriter<W>>,
    size: Arc<AtomicU64>,
    jobs: VecDeque<Job>,
}

struct State<W: Write + Send> {
    files: HashMap<u64, File<W>>,
    /// Files with jobs that no thread is encoding, in the order their work came.
    ready: VecDeque<u64>,
    /// Jobs waiting in the files' queues.
    queued: usize,
    /// A write or close failed: what is left is dropped.
    failed: bool,
    /// The destination is gone: threads end once no file has work.
    stopping: bool,
}

struct Shared<W: Write + Send> {
    state: Mutex<State<W>>,
    /// Threads wait here for a file with work.
    work: Condvar,
    /// The destination waits here for room in the queues.
    room: Condvar,
    limit: usize,
}

impl<W: Write + Send> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, State<W>> {
        // Nothing panics while holding the lock (encoding happens outside it).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct Encoders<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    threads: Vec<JoinHandle<()>>,
    done: Receiver<Done<W>>,
    next_id: u64,
}

impl<W: Write + Send + 'static> Encoders<W> {
    pub fn new() -> Self {
        Self::with_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn with_threads(count: usize) -> Self {
        let count = count.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                files: HashMap::new(),
                ready: VecDeque::new(),
                queued: 0,
                failed: false,
                stopping: false,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            limit: count * QUEUED_PER_THREAD,
        });
        let (report, done) = channel();
        let threads = (0..count)
            .map(|_| {
                let (shared, report) = (shared.clone(), report.clone());
                std::thread::Builder::new()
                    .name("encode".into())
                    .spawn(move || encode(&shared, &report))
                    .expect("an encoding thread starts")
            })
            .collect();
        Self {
            shared,
            threads,
            done,
            next_id: 0,
        }
    }

    /// Adds a new file to the pool.
    pub fn open(&mut self, writer: FileWriter<W>) -> Encoding {
        let id = self.next_id;
        self.next_id += 1;
        let size = Arc::new(AtomicU64::new(writer.size()));
        let file = File {
            writer: Some(writer),
            size: size.clone(),
            jobs: VecDeque::new(),
        };
        self.shared.lock().files.insert(id, file);
        Encoding { id, size }
    }

    /// Queues a batch for the file; with `wait`, the answer tells when it is encoded.
    pub fn write(&self, file: &Encoding, batch: RecordBatch, wait: bool) -> Option<Written> {
        let (written, answer) = match wait {
            true => {
                let (tx, rx) = sync_channel(1);
                (Some(tx), Some(Written(rx)))
            }
            false => (None, None),
        };
        self.queue(file.id, Job::Write { batch, written });
        answer
    }

    /// Queues the file's closing; [`Encoders::next_done`] brings its sink back.
    pub fn close(&mut self, file: Encoding) -> u64 {
        self.queue(file.id, Job::Close);
        file.id
    }

    /// Waits for room, then queues the job behind the file's others. After a failure
    /// the job is dropped: the failure reaches the destination through
    /// [`Encoders::try_done`].
    fn queue(&self, id: u64, job: Job) {
        let shared = &*self.shared;
        let mut state = shared.lock();
        while state.queued >= shared.limit && !state.failed {
            state = shared.room.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.failed {
            return;
        }
        let file = state
            .files
            .get_mut(&id)
            .expect("a file is open until closed");
        file.jobs.push_back(job);
        let idle = file.writer.is_some() && file.jobs.len() == 1;
        state.queued += 1;
        if idle {
            state.ready.push_back(id);
            shared.work.notify_one();
        }
    }

    /// What a thread has finished since last asked, if anything.
    pub fn try_done(&self) -> Option<Done<W>> {
        match self.done.try_recv() {
            Ok(done) => Some(done),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(stopped()),
        }
    }

    /// Waits for the next thing a thread finishes.
    pub fn next_done(&self) -> Done<W> {
        self.done.recv().unwrap_or_else(|_| stopped())
    }
}

fn stopped<W>() -> Done<W> {
    Done::Failed(NodeError::msg("an encoding thread stopped unexpectedly"))
}

/// Stops the threads once they have done what was queued: nothing of the run's is being
/// written once the destination is gone, so a store can remove what it staged.
impl<W: Write + Send + 'static> Drop for Encoders<W> {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.work.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// What became of a job.
enum Outcome<W: Write + Send> {
    Wrote(FileWriter<W>),
    Closed(W, u64),
    Failed(NodeError),
}

fn encode<W: Write + Send>(shared: &Shared<W>, report: &Sender<Done<W>>) {
    let mut state = shared.lock();
    loop {
        let Some(id) = state.ready.pop_front() else {
            if state.stopping {
                return;
            }
            state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        let file = state.files.get_mut(&id).expect("a file with work is open");
        let (Some(job), Some(mut writer)) = (file.jobs.pop_front(), file.writer.take()) else {
            unreachable!("a file with work has a job and no thread on it");
        };
        let size = file.size.clone();
        state.queued -= 1;
        shared.room.notify_one();
        drop(state);

        // A panic in an encoder fails the run like any other failure, rather than
        // leaving the destination waiting for a file no thread will finish.
        let outcome = catch_unwind(AssertUnwindSafe(|| match job {
            Job::Write { batch, written } => {
                let outcome = match writer.write(&batch) {
                    Ok(()) => {
                        size.store(writer.size(), Ordering::Relaxed);
                        Outcome::Wrote(writer)
                    }
                    Err(e) => Outcome::Failed(e),
                };
                if let Some(written) = written {
                    let _ = written.send(());
                }
                outcome
            }
            Job::Close => match writer.close() {
                Ok((sink, bytes)) => Outcome::Closed(sink, bytes),
                Err(e) => Outcome::Failed(e),
            },
        }))
        .unwrap_or_else(|_| {
            Outcome::Failed(NodeError::msg("a file's encoding failed unexpectedly"))
        });

        state = shared.lock();
        match outcome {
            Outcome::Wrote(writer) => {
                if let Some(file) = state.files.get_mut(&id) {
                    file.writer = Some(writer);
                    // This thread takes the file's next job itself, unless one waited
                    // longer: no other thread needs waking for it.
                    if !file.jobs.is_empty() {
                        state.ready.push_back(id);
                    }
                }
            }
            Outcome::Closed(sink, bytes) => {
                state.files.remove(&id);
                let _ = report.send(Done::Closed { id, sink, bytes });
            }
            Outcome::Failed(e) => {
                // The other files are dropped with their queued writes; those a thread
                // is encoding are dropped when it is done.
                state.failed = true;
                state.files.clear();
                state.ready.clear();
                state.queued = 0;
                shared.room.notify_all();
                let _ = report.send(Done::Failed(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codecs::FileFormat;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::time::Duration;

    /// Keeps what is written; holds the first write until `gate` lets it go.
    struct Sink {
        gate: Option<Receiver<()>>,
        bytes: Vec<u8>,
        panics: bool,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(gate) = self.gate.take() {
                let _ = gate.recv();
            }
            assert!(!self.panics, "a sink that panics");
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn batch(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![n, n + 1]))]).unwrap()
    }

    fn open(pool: &mut Encoders<Sink>, gate: Option<Receiver<()>>) -> Encoding {
        open_sink(pool, gate, false)
    }

    fn open_sink(pool: &mut Encoders<Sink>, gate: Option<Receiver<()>>, panics: bool) -> Encoding {
        let first = batch(0);
        let sink = Sink {
            gate,
            bytes: Vec::new(),
            panics,
        };
        let writer = FileWriter::new(FileFormat::Jsonl, sink, &first.schema(), &first).unwrap();
        pool.open(writer)
    }

    #[test]
    fn a_file_held_up_keeps_no_other_file_waiting_and_every_file_keeps_its_order() {
        let mut pool = Encoders::with_threads(2);
        let (release, gate) = channel();
        let held = open(&mut pool, Some(gate));
        let others = [open(&mut pool, None), open(&mut pool, None)];
        pool.write(&held, batch(0), false);
        // Many more writes than the queues hold, for files that are not held up: the one
        // free thread takes them all. (Were files tied to threads, one of these would share
        // the held file's thread and wait behind it, and so would the writer.)
        let (finished, done) = channel();
        let writer = std::thread::spawn(move || {
            for n in 0..50 {
                for file in &others {
                    pool.write(file, batch(n * 10), false);
                }
            }
            finished.send(()).unwrap();
            (pool, others)
        });
        let waited = done.recv_timeout(Duration::from_secs(60));
        release.send(()).unwrap();
        assert!(
            waited.is_ok(),
            "writes for other files waited for the held one"
        );
        let (mut pool, others) = writer.join().unwrap();
        pool.write(&held, batch(1), false);
        let ids: Vec<u64> = std::iter::once(held)
            .chain(others)
            .map(|f| pool.close(f))
            .collect();
        let mut files = HashMap::new();
        while files.len() < ids.len() {
            match pool.next_done() {
                Done::Closed { id, sink, .. } => files.insert(id, sink.bytes),
                Done::Failed(e) => panic!("{e}"),
            };
        }
        let lines = |ns: &[i64]| -> String {
            ns.iter()
                .map(|n| format!("{{\"n\":{n}}}\n{{\"n\":{}}}\n", n + 1))
                .collect()
        };
        assert_eq!(String::from_utf8_lossy(&files[&ids[0]]), lines(&[0, 1]));
        let every: Vec<i64> = (0..50).map(|n| n * 10).collect();
        for id in &ids[1..] {
            assert_eq!(String::from_utf8_lossy(&files[id]), lines(&every));
        }
    }

    #[test]
    fn a_panic_while_encoding_fails_the_run_instead_of_leaving_it_waiting() {
        let mut pool = Encoders::with_threads(2);
        let files = [open(&mut pool, None), open_sink(&mut pool, None, true)];
        for n in 0..20 {
            for file in &files {
                pool.write(file, batch(n), false);
            }
        }
        for file in files {
            pool.close(file);
        }
        let failure = std::iter::from_fn(|| Some(pool.next_done()))
            .find_map(|done| match done {
                Done::Failed(e) => Some(e.to_string()),
                Done::Closed { .. } => None,
            })
            .unwrap();
        assert!(
            failure.contains("encoding failed unexpectedly"),
            "{failure}"
        );
    }
}
