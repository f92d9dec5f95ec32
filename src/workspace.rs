//! Opening a flow file to validate, preview or run it: the steps the CLI and the app share.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::flow::{Analysis, Flow, LoadError, Plan, Problem, ValidateContext, analyze};
use crate::paths::Dirs;

/// Relative paths in a flow are relative to the flow file's folder, so a flow and its data
/// can move together.
pub fn base_dir(flow_path: &Path) -> PathBuf {
    match flow_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Loads, validates and plans a flow file; every problem found, or the plan.
pub fn plan_file(
    path: &Path,
    overrides: &IndexMap<String, String>,
    dirs: &Dirs,
) -> Result<(Flow, Plan), Vec<Problem>> {
    let flow = Flow::load(path).map_err(|e| match e {
        LoadError::Invalid(p) => vec![p],
        io => vec![Problem {
            node: None,
            path: String::new(),
            message: io.to_string(),
        }],
    })?;
    let plan = plan_flow(&flow, &base_dir(path), overrides, dirs)?;
    Ok((flow, plan))
}

/// Validates and plans a flow that is already in memory (the app's open document).
pub fn plan_flow(
    flow: &Flow,
    base_dir: &Path,
    overrides: &IndexMap<String, String>,
    dirs: &Dirs,
) -> Result<Plan, Vec<Problem>> {
    let analysis = analyze_flow(flow, base_dir, overrides, dirs);
    analysis.plan.ok_or(analysis.problems)
}

/// Everything validation finds out about a flow, for the app's canvas and inspector.
pub fn analyze_flow(
    flow: &Flow,
    base_dir: &Path,
    overrides: &IndexMap<String, String>,
    dirs: &Dirs,
) -> Analysis {
    let connections = match crate::auth::names(dirs) {
        Ok(c) => c,
        Err(m) => {
            return Analysis {
                problems: vec![Problem {
                    node: None,
                    path: String::new(),
                    message: m,
                }],
                ..Default::default()
            };
        }
    };
    analyze(
        flow,
        &ValidateContext {
            base_dir: base_dir.to_path_buf(),
            overrides,
            connections: &connections,
        },
    )
}
