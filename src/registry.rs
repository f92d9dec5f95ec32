//! Every node type Tributary knows, in palette order. Adding a node type is one module and
//! one line here; the palette, validation, the runner, `tributary connectors` and the
//! JSON Schema all read this list.

use std::sync::LazyLock;

use crate::connectors::s3::{destination as s3_destination, source as s3_source};
use crate::connectors::{demo_crm, file, framework, local, postgres, rest};
use crate::node::NodeType;
use crate::transforms::{
    aggregate, arithmetic, command, dedupe, filter, formula, hash, map, mask, merge, script,
    truncate, union, validate,
};

static REGISTRY: LazyLock<Vec<NodeType>> = LazyLock::new(|| {
    let mut types = vec![
        NodeType::of::<demo_crm::DemoCrm>(),
        NodeType::of::<file::FileSource>(),
        NodeType::of::<s3_source::S3Source>(),
        NodeType::of::<rest::RestSource>(),
    ];
    // The connector framework's services each have a source node of their own.
    types.extend(
        crate::connectors::services()
            .iter()
            .filter_map(|s| framework::source::node_type(*s)),
    );
    types.extend([
        NodeType::of::<map::Map>(),
        NodeType::of::<map::MapAll>(),
        NodeType::of::<filter::Filter>(),
        NodeType::of::<validate::Validate>(),
        NodeType::of::<mask::Mask>(),
        NodeType::of::<merge::Merge>(),
        NodeType::of::<truncate::Truncate>(),
        NodeType::of::<arithmetic::Arithmetic>(),
        NodeType::of::<formula::Formula>(),
        NodeType::of::<aggregate::Aggregate>(),
        NodeType::of::<hash::Hash>(),
        NodeType::of::<dedupe::Dedupe>(),
        NodeType::of::<union::Union>(),
        NodeType::of::<script::Script>(),
        NodeType::of::<command::CommandTransform>(),
        NodeType::of::<local::LocalDestination>(),
        NodeType::of::<s3_destination::S3Destination>(),
        NodeType::of::<postgres::destination::PostgresDestination>(),
    ]);
    types.extend(
        crate::connectors::services()
            .iter()
            .filter_map(|s| framework::destination::node_type(*s)),
    );
    types
});

pub fn all() -> &'static [NodeType] {
    &REGISTRY
}

pub fn find(name: &str) -> Option<&'static NodeType> {
    REGISTRY.iter().find(|t| t.name == name)
}

/// Turns every node config of an older shape into today's, for the app to show and save.
pub fn upgrade(flow: &mut crate::flow::Flow) {
    for node in &mut flow.nodes {
        if let Some(t) = find(&node.kind) {
            t.upgrade(&mut node.config);
        }
    }
}
