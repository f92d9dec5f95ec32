//! Checks a flow and plans it: every problem found in one pass, each tied to a node and a
//! JSON path, and for a flow without problems, the nodes in run order with their output
//! schemas. The app and the CLI both go through here before previews and runs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use indexmap::IndexMap;

use super::{Flow, Trigger, params};
use crate::node::{NodeConfig, NodeType, PlanContext, Role};

/// One thing wrong with a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The node it belongs to, when it belongs to one.
    pub node: Option<String>,
    /// JSON pointer into the flow file, e.g. `/nodes/2/config/fields/0`.
    pub path: String,
    pub message: String,
    /// A service could not be reached or refused while the flow was planned (see
    /// `ConfigProblem::service`): a run with only such problems fails (exit 1), it is not
    /// an invalid flow (exit 2).
    pub service: bool,
}

impl Problem {
    pub fn new(node: Option<&str>, path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            node: node.map(str::to_string),
            path: path.into(),
            message: message.into(),
            service: false,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.node, self.path.is_empty()) {
            (Some(node), _) => write!(f, "node `{node}` ({}): {}", self.path, self.message),
            (None, false) => write!(f, "{}: {}", self.path, self.message),
            (None, true) => f.write_str(&self.message),
        }
    }
}

/// A flow that passed validation, ready for the engine.
#[derive(Debug, Clone)]
pub struct Plan {
    pub flow_name: String,
    pub trigger: Trigger,
    /// The flow's `error_threshold`: percent of the records read.
    pub error_threshold: u8,
    /// Where the flow was planned: its folder, the data folder, what was learnt of services.
    pub context: PlanContext,
    /// In run order: every node comes after all of its inputs.
    pub nodes: Vec<PlannedNode>,
}

#[derive(Debug, Clone)]
pub struct PlannedNode {
    pub id: String,
    /// Its label, else its id: how messages and a union's input field name it.
    pub name: String,
    pub kind: &'static NodeType,
    pub config: Arc<dyn NodeConfig>,
    /// Indices into [`Plan::nodes`].
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    /// The schema of what it receives: its input's, or the union of its inputs'.
    pub input_schema: Option<SchemaRef>,
    pub schema: SchemaRef,
}

impl fmt::Debug for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Plan {
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }
}

/// What validation needs besides the flow itself.
pub struct Context<'a> {
    /// The flow's folder, the data folder and the workspace's discovery cache.
    pub plan: PlanContext,
    /// `--param` values and the app's Parameters panel, over the flow's own `params`.
    pub overrides: &'a IndexMap<String, String>,
    /// Names of the connections that exist.
    pub connections: &'a [String],
    /// A part of a flow for a preview: nodes need not lead to a destination.
    pub partial: bool,
    /// The node types a flow may use (the registry's; the flow model does not reach up to
    /// every connector itself).
    pub node_types: &'static [NodeType],
}

/// Everything validation learns about a flow, problems or not: the app shows problems on
/// their nodes and offers the fields each node receives while the flow is still unfinished.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub problems: Vec<Problem>,
    /// The output schema of each node whose config and inputs are good, by node id.
    pub schemas: HashMap<String, SchemaRef>,
    /// The plan, when there are no problems.
    pub plan: Option<Plan>,
}

/// Validates `flow` and, when it has no problems, plans it.
pub fn validate(flow: &Flow, cx: &Context) -> Result<Plan, Vec<Problem>> {
    let analysis = analyze(flow, cx);
    analysis.plan.ok_or(analysis.problems)
}

/// Checks every node and edge, and works out each node's output schema.
pub fn analyze(flow: &Flow, cx: &Context) -> Analysis {
    let mut problems = Vec::new();
    let params = params::merge(&flow.params, cx.overrides);
    let problem =
        |node: Option<&str>, path: String, message: String| Problem::new(node, path, message);

    if flow.error_threshold.is_some_and(|t| t > 100) {
        problems.push(problem(
            None,
            "/error_threshold".into(),
            "the error threshold is a percent of the records read, from 0 to 100".into(),
        ));
    }
    if let Some(Err(e)) = flow.trigger.schedule_of() {
        problems.push(problem(None, format!("/trigger/{}", e.setting), e.message));
    }
    if let Err(e) = flow.trigger.first_run_from() {
        problems.push(problem(None, format!("/trigger/{}", e.setting), e.message));
    }

    // Node by node: identity, type, placeholders, connection, config.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut kinds: Vec<Option<&'static NodeType>> = Vec::new();
    let mut configs: Vec<Option<Arc<dyn NodeConfig>>> = Vec::new();
    for (i, node) in flow.nodes.iter().enumerate() {
        let id = Some(node.id.as_str());
        if node.id.trim().is_empty() {
            problems.push(problem(
                id,
                format!("/nodes/{i}/id"),
                "a node needs an id".into(),
            ));
        } else if let Some(bad) = node.id.chars().find(|c| !is_id_char(*c)) {
            problems.push(problem(
                id,
                format!("/nodes/{i}/id"),
                format!(
                    "a node id may hold letters, digits, `_`, `-` and `.` only, not {}",
                    describe_char(bad)
                ),
            ));
        } else if index.insert(&node.id, i).is_some() {
            problems.push(problem(
                id,
                format!("/nodes/{i}/id"),
                format!("the id `{}` is used by more than one node", node.id),
            ));
        }
        let kind = cx.node_types.iter().find(|t| t.name == node.kind);
        if kind.is_none() {
            problems.push(problem(
                id,
                format!("/nodes/{i}/type"),
                format!(
                    "unknown node type `{}`; known types: {}",
                    node.kind,
                    cx.node_types
                        .iter()
                        .map(|t| t.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        kinds.push(kind);

        let mut config = node.config.clone();
        let unfilled = params::fill(&mut config, &params);
        for u in &unfilled {
            let message = if u.unclosed {
                format!(
                    "`${{{}` has no closing `}}`: write `${{name}}` for a parameter, or `$${{` for a literal `${{`",
                    u.name
                )
            } else {
                format!(
                    "the placeholder `${{{}}}` has no value: add it to the flow's params or pass --param {}=…",
                    u.name, u.name
                )
            };
            problems.push(problem(id, format!("/nodes/{i}/config{}", u.path), message));
        }
        if let Some(name) = config.get("connection").and_then(|c| c.as_str())
            && !cx.connections.iter().any(|c| c == name)
        {
            problems.push(problem(
                id,
                format!("/nodes/{i}/config/connection"),
                format!(
                    "there is no connection named `{name}`; create it with `tributary connection add` or pick one of: {}",
                    if cx.connections.is_empty() { "(none yet)".to_string() } else { cx.connections.join(", ") }
                ),
            ));
        }
        let parsed = match kind {
            Some(kind) if unfilled.is_empty() => match kind.parse(config) {
                Ok(c) => Some(c),
                Err(p) => {
                    problems.push(problem(
                        id,
                        format!("/nodes/{i}/config{}", p.path),
                        p.message,
                    ));
                    None
                }
            },
            _ => None,
        };
        configs.push(parsed);
    }

    // Edges.
    let n = flow.nodes.len();
    let mut inputs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut outputs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut seen_edges = HashSet::new();
    for (j, edge) in flow.edges.iter().enumerate() {
        let from = index.get(edge.from.as_str()).copied();
        let to = index.get(edge.to.as_str()).copied();
        for (end, id, found) in [("from", &edge.from, from), ("to", &edge.to, to)] {
            if found.is_none() {
                problems.push(problem(
                    None,
                    format!("/edges/{j}/{end}"),
                    format!(
                        "the edge {} from `{}` to `{}` names a node `{id}` that is not in the flow",
                        j, edge.from, edge.to
                    ),
                ));
            }
        }
        let (Some(from), Some(to)) = (from, to) else {
            continue;
        };
        if !seen_edges.insert((from, to)) {
            problems.push(problem(
                Some(&edge.to),
                format!("/edges/{j}"),
                format!(
                    "the edge from `{}` to `{}` is listed twice",
                    edge.from, edge.to
                ),
            ));
            continue;
        }
        if kinds[to].map(|k| k.role) == Some(Role::Source) {
            problems.push(problem(
                Some(&edge.to),
                format!("/edges/{j}/to"),
                format!("`{}` is a source; a source takes no input", edge.to),
            ));
        }
        if kinds[from].map(|k| k.role) == Some(Role::Destination) {
            problems.push(problem(
                Some(&edge.from),
                format!("/edges/{j}/from"),
                format!(
                    "`{}` is a destination; records cannot leave a destination",
                    edge.from
                ),
            ));
        }
        inputs[to].push(from);
        outputs[from].push(to);
    }

    // Run order; what is left over sits on a cycle.
    let order = topological_order(&inputs, &outputs);
    if order.len() < n {
        let placed: HashSet<usize> = order.iter().copied().collect();
        let stuck: Vec<usize> = (0..n).filter(|i| !placed.contains(i)).collect();
        let names: Vec<String> = stuck
            .iter()
            .map(|&i| format!("`{}`", flow.nodes[i].id))
            .collect();
        problems.push(problem(
            Some(&flow.nodes[stuck[0]].id),
            format!("/nodes/{}", stuck[0]),
            format!(
                "the flow has a cycle among {}; records must flow one way, from sources to destinations",
                names.join(", ")
            ),
        ));
    }

    // Shape: every source reaches a destination, every other node has exactly its input.
    for (i, node) in flow.nodes.iter().enumerate() {
        let Some(kind) = kinds[i] else { continue };
        let id = Some(node.id.as_str());
        match kind.role {
            Role::Source if !cx.partial && !reaches_destination(i, &outputs, &kinds) => problems.push(problem(
                id,
                format!("/nodes/{i}"),
                "this source has no way to a destination: connect it, through transforms, to a destination".into(),
            )),
            Role::Transform if inputs[i].is_empty() => problems.push(problem(
                id,
                format!("/nodes/{i}"),
                "this transform has no input: connect a source or another transform to it".into(),
            )),
            Role::Transform if !cx.partial && !reaches_destination(i, &outputs, &kinds) => problems.push(problem(
                id,
                format!("/nodes/{i}"),
                "this transform leads to no destination: connect its output".into(),
            )),
            Role::Destination if inputs[i].is_empty() => problems.push(problem(
                id,
                format!("/nodes/{i}"),
                "this destination has no input: connect a source or a transform to it".into(),
            )),
            Role::Transform | Role::Destination if inputs[i].len() > 1 && !kind.many_inputs => problems.push(problem(
                id,
                format!("/nodes/{i}"),
                format!(
                    "this {} has {} inputs ({}); it takes exactly one",
                    kind.role,
                    inputs[i].len(),
                    inputs[i].iter().map(|&j| format!("`{}`", flow.nodes[j].id)).collect::<Vec<_>>().join(", ")
                ),
            )),
            _ => {}
        }
    }

    // Schemas, in run order, so each node checks the fields it names against its input.
    let mut schemas: Vec<Option<SchemaRef>> = vec![None; n];
    let mut received: Vec<Option<SchemaRef>> = vec![None; n];
    for &i in &order {
        let (Some(config), Some(kind)) = (&configs[i], kinds[i]) else {
            continue;
        };
        // Nodes whose inputs are wrong were reported above; their fields cannot be checked.
        let union;
        let input = match (kind.role, inputs[i].as_slice()) {
            (Role::Source, []) => None,
            (Role::Transform | Role::Destination, [j]) if !kind.many_inputs => match &schemas[*j] {
                Some(s) => Some(s),
                None => continue, // the input has problems of its own
            },
            (Role::Transform | Role::Destination, several)
                if kind.many_inputs && !several.is_empty() =>
            {
                let named: Option<Vec<(&str, &SchemaRef)>> = several
                    .iter()
                    .map(|&j| Some((flow.nodes[j].name(), schemas[j].as_ref()?)))
                    .collect();
                let Some(named) = named else { continue };
                match crate::node::union_schema(&named) {
                    Ok(s) => {
                        union = s;
                        Some(&union)
                    }
                    Err(message) => {
                        problems.push(problem(
                            Some(&flow.nodes[i].id),
                            format!("/nodes/{i}"),
                            message,
                        ));
                        continue;
                    }
                }
            }
            _ => continue,
        };
        received[i] = input.cloned();
        match config.output_schema(input, &cx.plan) {
            Ok(schema) => schemas[i] = Some(schema),
            Err(list) => problems.extend(list.into_iter().map(|p| Problem {
                service: p.service,
                ..problem(
                    Some(&flow.nodes[i].id),
                    format!("/nodes/{i}/config{}", p.path),
                    p.message,
                )
            })),
        }
    }

    if flow.nodes.is_empty() {
        problems.push(problem(
            None,
            "/nodes".into(),
            "the flow has no nodes yet: add a source and a destination".into(),
        ));
    }
    let known: HashMap<String, SchemaRef> = schemas
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((flow.nodes[i].id.clone(), s.clone()?)))
        .collect();
    if !problems.is_empty() {
        return Analysis {
            problems,
            schemas: known,
            plan: None,
        };
    }

    let position: HashMap<usize, usize> = order.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    let nodes = order
        .iter()
        .map(|&i| PlannedNode {
            id: flow.nodes[i].id.clone(),
            name: flow.nodes[i].name().to_string(),
            kind: kinds[i].expect("checked above"),
            config: configs[i].clone().expect("checked above"),
            inputs: inputs[i].iter().map(|j| position[j]).collect(),
            outputs: outputs[i].iter().map(|j| position[j]).collect(),
            input_schema: received[i].clone(),
            schema: schemas[i].clone().expect("checked above"),
        })
        .collect();
    let plan = Plan {
        flow_name: flow.name.clone(),
        trigger: flow.trigger.clone(),
        error_threshold: flow.error_threshold.unwrap_or(DEFAULT_ERROR_THRESHOLD),
        context: cx.plan.clone(),
        nodes,
    };
    Analysis {
        problems,
        schemas: known,
        plan: Some(plan),
    }
}

/// Kahn's algorithm; keeps the file's order among nodes that are free at the same time,
/// so run order (and so output order) is predictable.
fn topological_order(inputs: &[Vec<usize>], outputs: &[Vec<usize>]) -> Vec<usize> {
    let mut waiting: Vec<usize> = inputs.iter().map(Vec::len).collect();
    let mut ready: VecDeque<usize> = (0..inputs.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(inputs.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &o in &outputs[i] {
            waiting[o] -= 1;
            if waiting[o] == 0 {
                ready.push_back(o);
            }
        }
    }
    order
}

fn reaches_destination(start: usize, outputs: &[Vec<usize>], kinds: &[Option<&NodeType>]) -> bool {
    let mut seen = vec![false; outputs.len()];
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        if i != start && kinds[i].map(|k| k.role) == Some(Role::Destination) {
            return true;
        }
        stack.extend(&outputs[i]);
    }
    false
}

/// Percent of the records read that may be rejected before a run fails, unless the flow
/// says otherwise: a run that set most of its input aside is not a success.
pub const DEFAULT_ERROR_THRESHOLD: u8 = 50;

/// The characters of a node id: ASCII letters and digits, `_`, `-`, `.`. Ids are printed in
/// terminals, logs and file names, and are typed into `--node`; nothing in them may hide
/// or act on a terminal.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// A character in words: itself when it is visible, its code point when it is not.
fn describe_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() || !c.is_ascii() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("`{c}`")
    }
}

/// The id of the node a pointer such as `/nodes/3/config/x` falls in.
pub fn node_id_at(flow: &serde_json::Value, pointer: &str) -> Option<String> {
    let index: usize = pointer
        .strip_prefix("/nodes/")?
        .split('/')
        .next()?
        .parse()
        .ok()?;
    Some(
        flow.get("nodes")?
            .get(index)?
            .get("id")?
            .as_str()?
            .to_string(),
    )
}
