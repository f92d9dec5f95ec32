//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A scratch folder that is also the run's `$TRIBUTARY_HOME`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// Writes a flow file and returns its path.
    pub fn flow(&self, name: &str, flow: &Value) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(flow).unwrap()).unwrap();
        path
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs the `tributary` binary with this scratch folder as its home.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(args)
            .env("TRIBUTARY_HOME", self.home())
            .env_remove("TRIBUTARY_LOG")
            .output()
            .unwrap()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file below `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Counts records in an output file by reading it back in its format.
pub fn count_records(path: &Path) -> u64 {
    let ext = path.extension().unwrap().to_str().unwrap();
    match ext {
        "parquet" => {
            let file = std::fs::File::open(path).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
            reader.map(|b| b.unwrap().num_rows() as u64).sum()
        }
        "jsonl" => std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count() as u64,
        "json" => serde_json::from_str::<Vec<Value>>(&std::fs::read_to_string(path).unwrap())
            .unwrap()
            .len() as u64,
        "csv" => {
            let mut r = csv::Reader::from_path(path).unwrap();
            r.records().inspect(|r| assert!(r.is_ok(), "{r:?}")).count() as u64
        }
        other => panic!("unexpected output file type {other}"),
    }
}

/// A flow skeleton with nodes in a row and edges from `edges` pairs.
pub fn flow(nodes: Vec<Value>, edges: &[(&str, &str)]) -> Value {
    serde_json::json!({
        "format": "tributary.flow/1",
        "name": "test flow",
        "nodes": nodes,
        "edges": edges.iter().map(|(a, b)| serde_json::json!({"from": a, "to": b})).collect::<Vec<_>>(),
    })
}

pub fn node(id: &str, kind: &str, config: Value) -> Value {
    serde_json::json!({"id": id, "type": kind, "position": [0, 0], "config": config})
}
