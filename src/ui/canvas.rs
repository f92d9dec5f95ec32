//! The canvas: the flow's nodes and connections in the node editor. The flow is the truth;
//! the editor's graph is a view of it, brought up to date after every change, and what the
//! user does in it comes back as commands.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;

use egui::{Color32, Pos2, Rect, RichText, Ui, Vec2};
use egui_graph_edit::{
    AnyParameterId, DataTypeTrait, Graph, GraphEditorState, InputId, InputParamKind, NodeDataTrait,
    NodeId, NodeResponse, NodeTemplateIter, NodeTemplateTrait, UserResponseTrait, WidgetValueTrait,
};

use super::commands::Command;
use super::state::AppState;
use crate::engine::{NodeFigures, NodeState};
use crate::node::{NodeType, Role};
use crate::registry;

/// Records are the only thing that flows between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Records;

impl DataTypeTrait<()> for Records {
    fn data_type_color(&self, _: &mut ()) -> Color32 {
        Color32::from_rgb(0x3d, 0x8b, 0xd9)
    }

    fn name(&self) -> Cow<'_, str> {
        Cow::Borrowed("records")
    }
}

/// Ports carry no inline value.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoValue;

#[derive(Debug, Clone, Copy)]
pub struct NoResponse;

impl UserResponseTrait for NoResponse {}

impl WidgetValueTrait for NoValue {
    type Response = NoResponse;
    type UserState = ();
    type NodeData = NodeView;

    /// A node with one input shows none; a union names each of its inputs, which also
    /// spaces their ports apart.
    fn value_widget(
        &mut self,
        name: &str,
        _: NodeId,
        ui: &mut Ui,
        _: &mut (),
        node: &NodeView,
    ) -> Vec<NoResponse> {
        if node.kind.many_inputs {
            // As tall as a port, so that neighbouring ports do not overlap.
            ui.horizontal(|ui| {
                ui.set_min_height(24.0);
                ui.label(RichText::new(name).small().weak());
            });
        }
        Vec::new()
    }

    fn value_widget_connected(
        &mut self,
        name: &str,
        node_id: NodeId,
        ui: &mut Ui,
        user_state: &mut (),
        node: &NodeView,
    ) -> Vec<NoResponse> {
        self.value_widget(name, node_id, ui, user_state, node)
    }
}

/// What a node on the canvas shows.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: String,
    pub kind: &'static NodeType,
    pub summary: String,
    pub figures: Option<NodeFigures>,
    pub problem: Option<String>,
    /// Where the node was drawn this frame, in screen points: a wire let go of over a node
    /// (or just beside it) connects to its port.
    rect: Cell<Option<Rect>>,
    /// Zoomed out too far to read the node's text: it is drawn as its title bar, its colour
    /// and its border, without the lines of its body or a close button a few pixels wide.
    /// Set for every node before each frame.
    far: Cell<bool>,
}

impl NodeView {
    fn new(kind: &'static NodeType) -> Self {
        Self {
            id: String::new(),
            kind,
            summary: String::new(),
            figures: None,
            problem: None,
            rect: Cell::new(None),
            far: Cell::new(false),
        }
    }
}

/// Text smaller than this many points cannot be read.
const SMALLEST_READABLE: f32 = 5.0;

fn role_color(role: Role) -> Color32 {
    match role {
        Role::Source => Color32::from_rgb(0x2f, 0x7d, 0x5b),
        Role::Transform => Color32::from_rgb(0x5b, 0x5f, 0x97),
        Role::Destination => Color32::from_rgb(0x9a, 0x62, 0x2b),
    }
}

impl NodeDataTrait for NodeView {
    type Response = NoResponse;
    type UserState = ();
    type DataType = Records;
    type ValueType = NoValue;

    fn bottom_ui(
        &self,
        ui: &mut Ui,
        _: NodeId,
        _: &Graph<NodeView, Records, NoValue>,
        _: &mut (),
    ) -> Vec<NodeResponse<NoResponse, NodeView>> {
        ui.set_max_width(220.0);
        if self.far.get() {
            // Laying out lines nobody can read took a sixth of a frame of a large flow
            // seen whole.
            self.rect.set(Some(ui.min_rect()));
            return Vec::new();
        }
        ui.label(RichText::new(&self.summary).small());
        if let Some(f) = &self.figures {
            let words = f.state.in_words();
            let (text, color) = match f.state {
                NodeState::Idle => (words.to_string(), ui.visuals().weak_text_color()),
                NodeState::Running => (
                    format!("{words} · {} in · {} out", f.records_in, f.records_out),
                    Color32::from_rgb(0x3d, 0x8b, 0xd9),
                ),
                NodeState::Done => (
                    format!("{words} · {} in · {} out", f.records_in, f.records_out),
                    Color32::from_rgb(0x2f, 0x9e, 0x5b),
                ),
                NodeState::Failed => (words.to_string(), ui.visuals().error_fg_color),
                NodeState::Canceled => (words.to_string(), ui.visuals().warn_fg_color),
            };
            let text = match (f.state, self.kind.role) {
                (NodeState::Running | NodeState::Done, Role::Source) => {
                    text.replace(&format!(" · {} in", f.records_in), "")
                }
                (NodeState::Running | NodeState::Done, Role::Destination) => {
                    text.replace(&format!(" · {} out", f.records_out), "")
                }
                _ => text,
            };
            ui.label(RichText::new(text).small().color(color));
        }
        if let Some(p) = &self.problem {
            // The first problem itself, at the body's size so it reads at any zoom; all of
            // them on hover.
            let count = p.lines().count();
            let first = p.lines().next().unwrap_or_default();
            let text = if count > 1 {
                format!("⚠ {first} (+{} more)", count - 1)
            } else {
                format!("⚠ {first}")
            };
            ui.add(egui::Label::new(RichText::new(text).color(ui.visuals().error_fg_color)).wrap())
                .on_hover_text(p);
        }
        self.rect.set(Some(ui.min_rect()));
        Vec::new()
    }

    fn titlebar_color(
        &self,
        ui: &Ui,
        _: NodeId,
        _: &Graph<NodeView, Records, NoValue>,
        _: &mut (),
    ) -> Option<Color32> {
        let color = role_color(self.kind.role);
        // Muted under light text on a dark canvas; a light tint under dark text on a light
        // one.
        Some(if ui.visuals().dark_mode {
            color.gamma_multiply(0.55)
        } else {
            color.lerp_to_gamma(Color32::WHITE, 0.6)
        })
    }

    fn border_color(
        &self,
        ui: &Ui,
        _: NodeId,
        _: &Graph<NodeView, Records, NoValue>,
        _: &mut (),
    ) -> Option<Color32> {
        if self.problem.is_some() {
            return Some(ui.visuals().error_fg_color);
        }
        match self.figures.as_ref().map(|f| f.state) {
            Some(NodeState::Running) => Some(Color32::from_rgb(0x3d, 0x8b, 0xd9)),
            Some(NodeState::Done) => Some(Color32::from_rgb(0x2f, 0x9e, 0x5b)),
            Some(NodeState::Failed) => Some(ui.visuals().error_fg_color),
            _ => None,
        }
    }

    fn can_flip(&self, _: NodeId, _: &Graph<NodeView, Records, NoValue>, _: &mut ()) -> bool {
        false
    }

    /// Deleting stays with the Delete key and the menu when the button would be too small to
    /// hit.
    fn can_delete(&self, _: NodeId, _: &Graph<NodeView, Records, NoValue>, _: &mut ()) -> bool {
        !self.far.get()
    }
}

/// A node type, as the right-click node finder offers it.
#[derive(Clone, Copy)]
pub struct Template(pub &'static NodeType);

impl NodeTemplateTrait for Template {
    type NodeData = NodeView;
    type DataType = Records;
    type ValueType = NoValue;
    type UserState = ();
    type CategoryType = &'static str;

    fn node_finder_label(&self, _: &mut ()) -> Cow<'_, str> {
        Cow::Owned(format!("{} {}", self.0.icon, self.0.title))
    }

    fn node_finder_categories(&self, _: &mut ()) -> Vec<&'static str> {
        vec![match self.0.role {
            Role::Source => "Sources",
            Role::Transform => "Transforms",
            Role::Destination => "Destinations",
        }]
    }

    fn node_graph_label(&self, _: &mut ()) -> String {
        format!("{} {}", self.0.icon, self.0.title)
    }

    fn user_data(&self, _: &mut ()) -> NodeView {
        NodeView::new(self.0)
    }

    fn build_node(&self, graph: &mut Graph<NodeView, Records, NoValue>, _: &mut (), node: NodeId) {
        add_ports(graph, node, self.0.role);
    }
}

fn add_ports(graph: &mut Graph<NodeView, Records, NoValue>, node: NodeId, role: Role) {
    if role != Role::Source {
        graph.add_input_param(
            node,
            "in".into(),
            Records,
            NoValue,
            InputParamKind::ConnectionOnly,
            true,
        );
    }
    if role != Role::Destination {
        graph.add_output_param(node, "out".into(), Records);
    }
}

struct AllTemplates;

impl NodeTemplateIter for AllTemplates {
    type Item = Template;

    fn all_kinds(&self) -> Vec<Template> {
        registry::all().iter().map(Template).collect()
    }
}

/// A palette entry being dragged onto the canvas.
#[derive(Debug, Clone)]
pub struct PaletteDrag(pub &'static str);

type Editor = GraphEditorState<NodeView, Records, NoValue, Template, ()>;

#[derive(Default)]
pub struct Canvas {
    editor: Editor,
    to_graph: HashMap<String, NodeId>,
    to_flow: HashMap<NodeId, String>,
    synced_revision: u64,
    synced_selection: Vec<String>,
    /// Each node's position in the flow when it was last brought to the editor. The editor
    /// scales its positions when it zooms; a node whose flow position has not changed since
    /// keeps the editor's, so an edit elsewhere does not move every node.
    synced_positions: HashMap<String, [f32; 2]>,
    /// Where a node added by a click in the palette goes: the middle of the view.
    pub center: [f32; 2],
    /// A fit to do on the next frame, with the smallest zoom it may use.
    fit_requested: Option<f32>,
    /// The canvas size the last fit was made for.
    fit_size: Option<Vec2>,
    /// A wire being dragged off the input it was in: (from, to) in the flow.
    lifted: Option<(String, String)>,
    /// A zoom asked for from outside the canvas (the toolbar), done on its next frame.
    zoom_requested: Option<f32>,
    /// Fit the flow in view once the next change to it has reached the canvas.
    fit_after_change: bool,
    /// The document shown, to fit each newly opened flow.
    document: u64,
}

impl Canvas {
    /// Shows the whole flow, zooming out as far as that takes.
    pub fn fit_to_view(&mut self) {
        self.fit_requested = Some(0.3);
    }

    /// Fits the flow in view once the change about to be made (a tidy layout) is drawn.
    pub fn fit_after_change(&mut self) {
        self.fit_after_change = true;
    }

    /// Zooms by `factor` about the middle of the view (1.25 in, 0.8 out).
    pub fn zoom_by(&mut self, factor: f32) {
        self.zoom_requested = Some(self.zoom_requested.unwrap_or(1.0) * factor);
    }

    /// The zoom the flow is shown at, 1.0 being its size in the file.
    pub fn zoom(&self) -> f32 {
        self.editor.pan_zoom.zoom
    }

    /// Brings the graph up to date with the flow, keeping the editor's own ids for nodes
    /// that are still there so drags and selections survive.
    fn sync(&mut self, state: &AppState) {
        let flow = &state.doc.flow;
        if self.synced_revision != state.doc.revision {
            self.synced_revision = state.doc.revision;
            let wanted: Vec<&str> = flow.nodes.iter().map(|n| n.id.as_str()).collect();
            let gone: Vec<String> = self
                .to_graph
                .keys()
                .filter(|id| !wanted.contains(&id.as_str()))
                .cloned()
                .collect();
            for id in gone {
                let node = self.to_graph.remove(&id).expect("known");
                self.to_flow.remove(&node);
                self.remove_graph_node(node);
            }
            for n in &flow.nodes {
                let Some(kind) = registry::find(&n.kind) else {
                    continue;
                };
                let node = match self.to_graph.get(&n.id) {
                    Some(&node)
                        if self.editor.graph.nodes[node].user_data.kind.name == kind.name =>
                    {
                        node
                    }
                    existing => {
                        if let Some(&old) = existing {
                            self.to_flow.remove(&old);
                            self.remove_graph_node(old);
                        }
                        let node = self.editor.graph.add_node(
                            String::new(),
                            NodeView::new(kind),
                            |g, id| add_ports(g, id, kind.role),
                        );
                        self.editor.node_order.push(node);
                        self.editor
                            .node_orientations
                            .insert(node, egui_graph_edit::NodeOrientation::LeftToRight);
                        self.to_graph.insert(n.id.clone(), node);
                        self.to_flow.insert(node, n.id.clone());
                        node
                    }
                };
                let moved = self.synced_positions.get(&n.id) != Some(&n.position);
                if moved || !self.editor.node_positions.contains_key(node) {
                    self.editor
                        .node_positions
                        .insert(node, egui::pos2(n.position[0], n.position[1]));
                    self.synced_positions.insert(n.id.clone(), n.position);
                }
            }
            self.synced_positions
                .retain(|id, _| wanted.contains(&id.as_str()));
            // Connections: exactly the flow's edges.
            let wanted: Vec<(NodeId, NodeId)> = flow
                .edges
                .iter()
                .filter_map(|e| Some((*self.to_graph.get(&e.from)?, *self.to_graph.get(&e.to)?)))
                .collect();
            let current: Vec<_> = self.editor.graph.iter_connections().collect();
            for (input, output) in current {
                let pair = (
                    self.editor.graph.outputs[output].node,
                    self.editor.graph.inputs[input].node,
                );
                if !wanted.contains(&pair) {
                    self.editor.graph.remove_connection(input);
                }
            }
            // Each wanted edge into a node takes an input of it: the one it holds, else
            // a free one. A node with several inputs (a union) has one more than it uses,
            // to drop the next wire on.
            let mut targets: Vec<NodeId> = Vec::new();
            for &(_, to) in &wanted {
                if !targets.contains(&to) {
                    targets.push(to);
                }
            }
            for to in targets {
                let incoming: Vec<NodeId> = (wanted.iter())
                    .filter(|&&(_, t)| t == to)
                    .map(|&(f, _)| f)
                    .collect();
                if self.editor.graph.nodes[to].user_data.kind.many_inputs {
                    self.fit_inputs(to, incoming.len() + 1);
                }
                let inputs: Vec<InputId> = (self.editor.graph.nodes[to].inputs.iter())
                    .map(|&(_, id)| id)
                    .collect();
                for from in incoming {
                    let Some(&(_, output)) = self.editor.graph.nodes[from].outputs.first() else {
                        continue;
                    };
                    if inputs
                        .iter()
                        .any(|&i| self.editor.graph.connection(i) == Some(output))
                    {
                        continue;
                    }
                    if let Some(&free) =
                        (inputs.iter()).find(|&&i| self.editor.graph.connection(i).is_none())
                    {
                        self.editor.graph.add_connection(output, free);
                    }
                }
            }
            // Unions no longer fed by anything keep one free input.
            let unions: Vec<NodeId> = (self.to_flow.keys().copied())
                .filter(|&n| self.editor.graph.nodes[n].user_data.kind.many_inputs)
                .filter(|n| !wanted.iter().any(|(_, to)| to == n))
                .collect();
            for node in unions {
                self.fit_inputs(node, 1);
            }
        }
        // What nodes show changes without the flow changing: run figures, problems.
        for n in &flow.nodes {
            let Some(&node) = self.to_graph.get(&n.id) else {
                continue;
            };
            let kind = self.editor.graph.nodes[node].user_data.kind;
            let label = format!("{} {}", kind.icon, n.label.as_deref().unwrap_or(kind.title));
            let problems = state.problems_of(&n.id);
            let view = &mut self.editor.graph.nodes[node];
            view.label = label;
            view.user_data.id = n.id.clone();
            view.user_data.summary = registry::find(&n.kind)
                .and_then(|t| t.parse(n.config.clone()).ok())
                .map(|c| c.summary())
                .unwrap_or_else(|| "not set up yet".into());
            view.user_data.figures = state.run.figures.get(&n.id).cloned();
            view.user_data.problem = (!problems.is_empty()).then(|| {
                problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        // Selection made elsewhere (the Problems list, a new node) shows on the canvas.
        if state.selection != self.synced_selection {
            self.editor.selected_nodes = state
                .selection
                .iter()
                .filter_map(|id| self.to_graph.get(id).copied())
                .collect();
            self.synced_selection = state.selection.clone();
        }
    }

    /// The connection a wire dragged from `port` of `origin` makes when let go of at `at`
    /// without the editor's own port hit (a few points across): the node under the pointer,
    /// or the nearest within a snap distance, gives its port of the other side, since every
    /// node has at most one input and one output. (from, to) in the flow.
    fn drop_target(
        &self,
        origin: NodeId,
        port: AnyParameterId,
        at: Pos2,
    ) -> Option<(String, String)> {
        const SNAP: f32 = 24.0;
        let zoom = self.editor.pan_zoom.zoom;
        let wants_input = matches!(port, AnyParameterId::Output(_));
        let target = self
            .editor
            .graph
            .nodes
            .iter()
            .filter(|(id, node)| {
                *id != origin
                    && if wants_input {
                        !node.inputs.is_empty()
                    } else {
                        !node.outputs.is_empty()
                    }
            })
            .filter_map(|(id, node)| {
                // The node's frame, with its ports on its edges, lies a margin outside what
                // it draws (egui-graph-edit's 15 × 5 points, scaled with the zoom).
                let rect = node
                    .user_data
                    .rect
                    .get()?
                    .expand2(Vec2::new(15.0, 5.0) * zoom);
                let distance = rect.distance_to_pos(at);
                (distance <= SNAP).then_some((id, distance))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))?
            .0;
        let origin = self.to_flow.get(&origin)?.clone();
        let target = self.to_flow.get(&target)?.clone();
        Some(if wants_input {
            (origin, target)
        } else {
            (target, origin)
        })
    }

    /// Gives a node with several inputs `wanted` input pins: adds free ones, and removes
    /// free ones beyond that, so exactly one is left to connect to.
    fn fit_inputs(&mut self, node: NodeId, wanted: usize) {
        let graph = &mut self.editor.graph;
        while graph.nodes[node].inputs.len() < wanted {
            graph.add_input_param(
                node,
                "in".into(),
                Records,
                NoValue,
                InputParamKind::ConnectionOnly,
                true,
            );
        }
        let free: Vec<InputId> = (graph.nodes[node].inputs.iter())
            .map(|&(_, id)| id)
            .filter(|&id| graph.connection(id).is_none())
            .collect();
        let extra = graph.nodes[node].inputs.len().saturating_sub(wanted);
        for id in free.into_iter().rev().take(extra) {
            graph.remove_input_param(id);
        }
        for (k, (name, _)) in graph.nodes[node].inputs.iter_mut().enumerate() {
            *name = format!("input {}", k + 1);
        }
    }

    fn remove_graph_node(&mut self, node: NodeId) {
        self.editor.graph.remove_node(node);
        self.editor.node_positions.remove(node);
        self.editor.node_orientations.remove(node);
        self.editor.node_order.retain(|n| *n != node);
        self.editor.selected_nodes.retain(|n| *n != node);
    }

    pub fn ui(&mut self, ui: &mut Ui, state: &AppState) -> Vec<Command> {
        // Text in nodes must not take the clicks and drags that select and move the node.
        ui.style_mut().interaction.selectable_labels = false;
        let changed = self.synced_revision != state.doc.revision;
        self.sync(state);
        if changed && std::mem::take(&mut self.fit_after_change) {
            self.fit_requested = Some(0.3);
        }
        let rect = ui.max_rect();
        self.center = [
            rect.center().x - rect.min.x - self.editor.pan_zoom.pan.x - 90.0,
            rect.center().y - rect.min.y - self.editor.pan_zoom.pan.y - 40.0,
        ];
        if self.document != state.document {
            self.document = state.document;
            // A flow just opened: fit it, but never so small that node text is hard to
            // read; a wider flow pans instead.
            self.fit_requested = Some(0.8);
        }
        if let Some(factor) = self.zoom_requested.take() {
            self.editor.zoom(ui, factor);
        }
        if let Some(min_zoom) = self.fit_requested.take() {
            self.fit(ui, rect.size(), min_zoom);
            // The panels around the canvas settle their sizes over the first frames: fit
            // again on the next frame, which is asked for now rather than left to the next
            // mouse move.
            if self.fit_size != Some(rect.size()) {
                self.fit_size = Some(rect.size());
                self.fit_requested = Some(min_zoom);
                ui.ctx().request_repaint();
            }
        }
        let small = ui.style().text_styles[&egui::TextStyle::Small].size;
        let far = small * self.editor.pan_zoom.zoom < SMALLEST_READABLE;
        for node in self.editor.graph.nodes.values() {
            node.user_data.far.set(far);
        }
        let dragging = self.editor.connection_in_progress;
        let response = self
            .editor
            .draw_graph_editor(ui, AllTemplates, &mut (), Vec::new());
        let mut commands = Vec::new();
        let connected = response
            .node_responses
            .iter()
            .any(|r| matches!(r, NodeResponse::ConnectEventEnded { .. }));
        if let Some((origin, port)) = dragging
            && self.editor.connection_in_progress.is_none()
            && !connected
            && let Some(at) = ui.ctx().input(|i| i.pointer.latest_pos())
            && let Some((from, to)) = self.drop_target(origin, port, at)
        {
            commands.push(match self.lifted.take() {
                Some(old) => Command::Rewire { old, from, to },
                None => Command::Connect { from, to },
            });
        }
        let mut moved = false;
        let mut clicked = None;
        let mut dragged = None;
        for r in response.node_responses {
            match r {
                NodeResponse::ConnectEventEnded { output, input } => {
                    let (from, to) = (
                        self.editor.graph.outputs[output].node,
                        self.editor.graph.inputs[input].node,
                    );
                    if let (Some(from), Some(to)) = (self.to_flow.get(&from), self.to_flow.get(&to))
                    {
                        let (from, to) = (from.clone(), to.clone());
                        commands.push(match self.lifted.take() {
                            Some(old) => Command::Rewire { old, from, to },
                            None => Command::Connect { from, to },
                        });
                    }
                }
                NodeResponse::DisconnectEvent { output, input } => {
                    let from = self.editor.graph.outputs.get(output).map(|o| o.node);
                    let to = self.editor.graph.inputs.get(input).map(|i| i.node);
                    if let (Some(from), Some(to)) = (
                        from.and_then(|n| self.to_flow.get(&n)),
                        to.and_then(|n| self.to_flow.get(&n)),
                    ) {
                        // Lifted off its input: what the drop does decides (below).
                        self.lifted = Some((from.clone(), to.clone()));
                    }
                }
                NodeResponse::DeleteNodeFull { node_id, .. } => {
                    if let Some(id) = self.to_flow.remove(&node_id) {
                        self.to_graph.remove(&id);
                        commands.push(Command::RemoveNodes(vec![id]));
                    }
                }
                NodeResponse::CreatedNode(node) => {
                    // The node finder made a node in the graph; the flow gets it and the next
                    // sync shows it.
                    let kind = self.editor.graph.nodes[node].user_data.kind.name;
                    let pos = self.editor.node_positions[node];
                    self.remove_graph_node(node);
                    commands.push(Command::AddNode {
                        kind: kind.into(),
                        position: [pos.x.round(), pos.y.round()],
                    });
                }
                NodeResponse::MoveNode { node, .. } => {
                    moved = true;
                    dragged = Some(node);
                }
                NodeResponse::SelectNode(node) => clicked = Some(node),
                _ => {}
            }
        }
        // A wire lifted off its input and let go of away from any port is taken out.
        if self.editor.connection_in_progress.is_none()
            && let Some((from, to)) = self.lifted.take()
        {
            commands.push(Command::Disconnect { from, to });
        }
        if moved {
            let moves = self
                .to_flow
                .iter()
                .filter_map(|(node, id)| {
                    let p = self.editor.node_positions.get(*node)?;
                    let flow_pos = state.doc.flow.node(id)?.position;
                    let pos = [p.x.round(), p.y.round()];
                    (pos != flow_pos).then(|| (id.clone(), pos))
                })
                .collect::<Vec<_>>();
            if !moves.is_empty() {
                commands.push(Command::MoveNodes(moves));
            }
        }
        // The editor clears its selection on any press in the same frame as the click that
        // selected a node, which happens when press and release arrive together.
        if let Some(node) = clicked
            && self.editor.selected_nodes.is_empty()
        {
            self.editor.selected_nodes = vec![node];
        }
        // A node being dragged is the one being worked on: it is selected (with the others
        // when it was one of several), never deselected by the drag.
        if let Some(node) = dragged
            && !self.editor.selected_nodes.contains(&node)
        {
            self.editor.selected_nodes = vec![node];
        }
        // The editor drops its selection on any press anywhere in the window; a press in the
        // inspector or a panel must keep the node selected.
        let pointer_here = ui
            .ctx()
            .pointer_latest_pos()
            .is_some_and(|p| rect.contains(p));
        if !pointer_here {
            self.editor.selected_nodes = state
                .selection
                .iter()
                .filter_map(|id| self.to_graph.get(id).copied())
                .collect();
        }
        let selected: Vec<String> = self
            .editor
            .selected_nodes
            .iter()
            .filter_map(|n| self.to_flow.get(n).cloned())
            .collect();
        if selected != self.synced_selection {
            self.synced_selection = selected.clone();
            commands.push(Command::Select(selected));
        }
        // A palette entry dropped here becomes a node where it was dropped.
        let pointer = ui.ctx().pointer_latest_pos();
        if ui.ctx().input(|i| i.pointer.any_released())
            && let Some(pos) = pointer.filter(|p| rect.contains(*p))
            && let Some(drag) = egui::DragAndDrop::take_payload::<PaletteDrag>(ui.ctx())
        {
            let at = pos - rect.min - self.editor.pan_zoom.pan - Vec2::new(90.0, 20.0);
            commands.push(Command::AddNode {
                kind: drag.0.into(),
                position: [at.x.round(), at.y.round()],
            });
        }
        if state.doc.flow.nodes.is_empty() {
            ui.painter().text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "Drag a source from the palette to start, or right-click for the node finder",
                egui::FontId::proportional(16.0),
                ui.visuals().weak_text_color(),
            );
        }
        commands
    }

    /// Zooms out when the flow is wider than the view, then pans so every node is in it.
    fn fit(&mut self, ui: &Ui, size: Vec2, min_zoom: f32) {
        let bounds = |editor: &Editor| {
            let positions: Vec<egui::Pos2> = editor.node_positions.values().copied().collect();
            (!positions.is_empty()).then(|| {
                let r = egui::Rect::from_points(&positions);
                // Positions are top-left corners; a node is about this big.
                egui::Rect::from_min_max(
                    r.min,
                    r.max + Vec2::new(190.0, 80.0) * editor.pan_zoom.zoom,
                )
            })
        };
        let Some(b) = bounds(&self.editor) else {
            return;
        };
        let margin = 60.0;
        let target = ((size.x - margin) / b.width() * self.editor.pan_zoom.zoom)
            .min((size.y - margin) / b.height() * self.editor.pan_zoom.zoom)
            .clamp(min_zoom, 1.0);
        let scale = target / self.editor.pan_zoom.zoom;
        if (scale - 1.0).abs() > 1e-3 {
            self.editor.zoom(ui, scale);
        }
        let Some(b) = bounds(&self.editor) else {
            return;
        };
        let mut pan = size / 2.0 - b.center().to_vec2();
        if b.width() > size.x - margin {
            pan.x = margin / 2.0 - b.min.x;
        }
        self.editor.pan_zoom.pan = pan;
    }
}
