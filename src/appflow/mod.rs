//! Flows from and to Amazon AppFlow: `tributary import appflow` reads an AppFlow flow
//! definition (a `CreateFlow` request, a `describe-flow` answer, a CloudFormation template)
//! into a flow file with the same meaning, and says what it could not carry over;
//! `tributary export appflow` writes a flow AppFlow can express as its definition.

pub mod definition;
pub mod export;
pub mod import;

pub use definition::Problem;
pub use export::{Exported, cloudformation, export};
pub use import::{Gap, ImportOptions, Imported, import};
