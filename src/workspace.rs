//! Opening a flow file to validate, preview or run it: the steps the CLI and the app share.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::flow::{Analysis, Flow, LoadError, Plan, Problem, ValidateContext, analyze};
use crate::node::{Discovery, PlanContext};
use crate::paths::Dirs;

/// Where flows are planned and run: the data folder (connections, vault, state) and what
/// has been learnt of services. One per app window, command or service; nodes are handed it
/// in their contexts instead of finding it themselves.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub dirs: Dirs,
    pub discovery: Discovery,
}

impl Workspace {
    pub fn new(dirs: Dirs) -> Self {
        Workspace {
            dirs,
            discovery: Discovery::default(),
        }
    }

    /// The context a flow in `base_dir` is planned in.
    pub fn plan_context(&self, base_dir: &Path) -> PlanContext {
        PlanContext {
            base_dir: base_dir.to_path_buf(),
            dirs: self.dirs.clone(),
            discovery: self.discovery.clone(),
        }
    }
}

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
    ws: &Workspace,
) -> Result<(Flow, Plan), Vec<Problem>> {
    let flow = Flow::load(path).map_err(|e| match e {
        LoadError::Invalid(p) => vec![p],
        io => vec![Problem::new(None, "", io.to_string())],
    })?;
    let plan = plan_flow(&flow, &base_dir(path), overrides, ws)?;
    Ok((flow, plan))
}

/// Validates and plans a flow that is already in memory (the app's open document).
pub fn plan_flow(
    flow: &Flow,
    base_dir: &Path,
    overrides: &IndexMap<String, String>,
    ws: &Workspace,
) -> Result<Plan, Vec<Problem>> {
    let analysis = analyze_flow(flow, base_dir, overrides, ws);
    analysis.plan.ok_or(analysis.problems)
}

/// Everything validation finds out about a flow, for the app's canvas and inspector.
pub fn analyze_flow(
    flow: &Flow,
    base_dir: &Path,
    overrides: &IndexMap<String, String>,
    ws: &Workspace,
) -> Analysis {
    analyze_with(flow, base_dir, overrides, ws, false)
}

/// Plans what a preview of `node` needs: the node and everything upstream of it. The rest of
/// the flow may be unfinished; a node being built need not lead to a destination yet.
pub fn plan_preview(
    flow: &Flow,
    base_dir: &Path,
    overrides: &IndexMap<String, String>,
    ws: &Workspace,
    node: &str,
) -> Result<Plan, Vec<Problem>> {
    let mut keep = std::collections::HashSet::new();
    let mut stack = vec![node.to_string()];
    while let Some(id) = stack.pop() {
        if keep.insert(id.clone()) {
            stack.extend(
                flow.edges
                    .iter()
                    .filter(|e| e.to == id)
                    .map(|e| e.from.clone()),
            );
        }
    }
    let mut part = flow.clone();
    part.nodes.retain(|n| keep.contains(&n.id));
    part.edges
        .retain(|e| keep.contains(&e.from) && keep.contains(&e.to));
    let analysis = analyze_with(&part, base_dir, overrides, ws, true);
    analysis.plan.ok_or(analysis.problems)
}

fn analyze_with(
    flow: &Flow,
    base_dir: &Path,
    overrides: &IndexMap<String, String>,
    ws: &Workspace,
    partial: bool,
) -> Analysis {
    let connections = match crate::auth::names(&ws.dirs) {
        Ok(c) => c,
        Err(m) => {
            let problem = Problem::new(None, "", m);
            return Analysis {
                problems: vec![problem],
                ..Default::default()
            };
        }
    };
    let cx = ValidateContext {
        plan: ws.plan_context(base_dir),
        overrides,
        connections: &connections,
        partial,
        node_types: crate::registry::all(),
    };
    analyze(flow, &cx)
}

/// One node's settings as a run would see them: placeholders filled, parsed by its type.
pub fn node_config(
    flow: &Flow,
    node: &str,
    overrides: &IndexMap<String, String>,
) -> Result<std::sync::Arc<dyn crate::node::NodeConfig>, String> {
    let n = flow
        .node(node)
        .ok_or_else(|| format!("there is no node `{node}`"))?;
    let kind =
        crate::registry::find(&n.kind).ok_or_else(|| format!("`{}` is not a node type", n.kind))?;
    let params = crate::flow::params::merge(&flow.params, overrides);
    let mut config = n.config.clone();
    if let Some(missing) = crate::flow::params::fill(&mut config, &params).first() {
        return Err(format!(
            "the parameter `{}` used at {} has no value",
            missing.name, missing.path
        ));
    }
    kind.parse(config)
        .map_err(|p| format!("{}: {}", p.path.trim_start_matches('/'), p.message))
}
