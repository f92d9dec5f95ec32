//! Transform nodes: AppFlow's task set (map, filter, mask, merge, truncate, validate,
//! arithmetic) plus aggregate, hash, dedupe, union, and a program of the user's (command). Each module is one node type; the registry
//! lists them. They work on whole batches with Arrow kernels wherever a kernel exists.

pub mod aggregate;
pub mod arithmetic;
pub mod command;
pub mod dedupe;
pub mod filter;
pub mod formula;
pub mod hash;
pub mod map;
pub mod mask;
pub mod merge;
pub mod script;
pub mod truncate;
pub mod union;
pub mod validate;
