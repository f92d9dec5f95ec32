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

/// The fields leaving a node whose records come back from code of the user's (a script, a
/// program): the incoming ones, every one of which may come back empty, then `added`. An
/// added name that comes in already is a problem: `who` may change its value, not its type.
pub(crate) fn with_added_fields(
    input: &arrow::datatypes::Schema,
    added: &indexmap::IndexMap<String, crate::types::FieldType>,
    who: &str,
    problems: &mut crate::fields::Problems,
) -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::Field;
    let mut fields: Vec<Field> = (input.fields().iter())
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    for (name, kind) in added {
        if input.field_with_name(name).is_ok() {
            problems.push(
                format!("/fields/{name}"),
                format!(
                    "`{name}` comes in already: {who} may change its value, but it keeps its type"
                ),
            );
        }
        fields.push(Field::new(name, kind.arrow(), true));
    }
    std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
}
