//! Flows from and to Amazon AppFlow: `tributary import appflow` reads an AppFlow flow
//! definition (a `CreateFlow` request, a `describe-flow` answer, a CloudFormation template)
//! into a flow file with the same meaning, and says what it could not carry over.

pub mod definition;
pub mod import;

pub use definition::Problem;
pub use import::{Gap, ImportOptions, Imported, import};
