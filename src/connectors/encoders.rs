//! Encoding is most of what writing files costs (Parquet's encodings and zstd), so a run's
//! open files are encoded on a pool of threads, one per core: a run that writes several
//! files at once (partitions) keeps every core busy instead of one. A file is always encoded
//! by the same thread, batch after batch in the order they came, so every file holds the same
//! bytes as if one thread had written them all.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;

use crate::codecs::FileWriter;
use crate::node::NodeError;

/// Jobs that may wait for one encoding thread. A few keep it busy while the destination
/// splits the next batch; every one holds a part of a batch, so they are few.
const QUEUE: usize = 2;

/// An open file, as the destination knows it while a thread encodes it.
pub struct Encoding {
    lane: usize,
    id: u64,
    /// What the file will have when its writes so far are encoded.
    size: Arc<AtomicU64>,
}

impl Encoding {
    /// The file's size as far as its thread got.
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

enum Job<W: Write + Send> {
    Open {
        id: u64,
        writer: FileWriter<W>,
        size: Arc<AtomicU64>,
    },
    Write {
        id: u64,
        batch: RecordBatch,
        written: Option<SyncSender<()>>,
    },
    Close {
        id: u64,
    },
}

/// What a thread tells the destination.
pub enum Done<W> {
    /// A file closed: its sink and its size.
    Closed { id: u64, sink: W, bytes: u64 },
    /// A write or close failed; the thread drops its files and ignores the rest.
    Failed(NodeError),
}

pub struct Encoders<W: Write + Send + 'static> {
    lanes: Vec<SyncSender<Job<W>>>,
    threads: Vec<JoinHandle<()>>,
    /// Files open on each lane, to give a new file to the least busy one.
    open: Vec<usize>,
    done: Receiver<Done<W>>,
    next_id: u64,
}

impl<W: Write + Send + 'static> Encoders<W> {
    pub fn new() -> Self {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (report, done) = channel();
        let (lanes, threads) = (0..count)
            .map(|_| {
                let (jobs, queue) = sync_channel(QUEUE);
                let report = report.clone();
                let thread = std::thread::Builder::new()
                    .name("encode".into())
                    .spawn(move || encode(queue, report))
                    .expect("an encoding thread starts");
                (jobs, thread)
            })
            .unzip();
        Self {
            open: vec![0; count],
            lanes,
            threads,
            done,
            next_id: 0,
        }
    }

    /// Hands a new file to the thread with the fewest open files.
    pub fn open(&mut self, writer: FileWriter<W>) -> Result<Encoding, NodeError> {
        let lane = (0..self.open.len())
            .min_by_key(|&l| self.open[l])
            .expect("at least one thread");
        let id = self.next_id;
        self.next_id += 1;
        let size = Arc::new(AtomicU64::new(writer.size()));
        self.send(
            lane,
            Job::Open {
                id,
                writer,
                size: size.clone(),
            },
        )?;
        self.open[lane] += 1;
        Ok(Encoding { lane, id, size })
    }

    /// Queues a batch for the file; with `wait`, the answer tells when it is encoded.
    pub fn write(
        &self,
        file: &Encoding,
        batch: RecordBatch,
        wait: bool,
    ) -> Result<Option<Written>, NodeError> {
        let (written, answer) = match wait {
            true => {
                let (tx, rx) = sync_channel(1);
                (Some(tx), Some(Written(rx)))
            }
            false => (None, None),
        };
        let job = Job::Write {
            id: file.id,
            batch,
            written,
        };
        self.send(file.lane, job)?;
        Ok(answer)
    }

    /// Queues the file's closing; [`Encoders::next_done`] brings its sink back.
    pub fn close(&mut self, file: Encoding) -> Result<u64, NodeError> {
        self.send(file.lane, Job::Close { id: file.id })?;
        self.open[file.lane] -= 1;
        Ok(file.id)
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

    fn send(&self, lane: usize, job: Job<W>) -> Result<(), NodeError> {
        self.lanes[lane].send(job).map_err(|_| thread_stopped())
    }
}

fn thread_stopped() -> NodeError {
    NodeError::msg("an encoding thread stopped unexpectedly")
}

fn stopped<W>() -> Done<W> {
    Done::Failed(thread_stopped())
}

/// Stops the threads once they have done what was queued: nothing of the run's is being
/// written once the destination is gone, so a store can remove what it staged.
impl<W: Write + Send + 'static> Drop for Encoders<W> {
    fn drop(&mut self) {
        self.lanes.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn encode<W: Write + Send>(queue: Receiver<Job<W>>, report: Sender<Done<W>>) {
    let mut files: HashMap<u64, (FileWriter<W>, Arc<AtomicU64>)> = HashMap::new();
    let mut failed = false;
    for job in queue {
        match job {
            Job::Open { id, writer, size } => {
                files.insert(id, (writer, size));
            }
            Job::Write { id, batch, written } => {
                if let (false, Some((writer, size))) = (failed, files.get_mut(&id)) {
                    match writer.write(&batch) {
                        Ok(()) => size.store(writer.size(), Ordering::Relaxed),
                        Err(e) => {
                            failed = true;
                            files.clear();
                            let _ = report.send(Done::Failed(e));
                        }
                    }
                }
                if let Some(written) = written {
                    let _ = written.send(());
                }
            }
            Job::Close { id } => {
                let Some((writer, _)) = files.remove(&id) else {
                    continue;
                };
                let done = match writer.close() {
                    Ok((sink, bytes)) => Done::Closed { id, sink, bytes },
                    Err(e) => {
                        failed = true;
                        files.clear();
                        Done::Failed(e)
                    }
                };
                let _ = report.send(done);
            }
        }
    }
}
