//! What a run tells its watchers: the CLI's progress bar and the app's Run panel.

use crate::node::NodeFigures;

use super::record::RunRecord;

/// What a run tells its watchers while it goes.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// The run has begun; these are its nodes in run order.
    Started {
        execution_id: String,
        nodes: Vec<String>,
    },
    /// A node's figures changed.
    Node { node: String, figures: NodeFigures },
    /// The run is over.
    Finished(Box<RunRecord>),
}
