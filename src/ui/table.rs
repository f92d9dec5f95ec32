//! A preview as the Preview tab shows it: text cells, column types, and which cells a
//! transform changed. Built once per preview in the background, never per frame.

use std::collections::HashMap;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::engine::Preview;
use crate::node::ErrorRecord;
use crate::types::describe;

#[derive(Debug, Clone, Default)]
pub struct PreviewTable {
    /// (name, type in words)
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<String>>,
    /// Per cell: the value before the node changed it, for the before/after view; `None`
    /// where it is unchanged. Empty when rows cannot be matched one to one (the node drops
    /// or groups records). Columns with changes come first.
    pub changed: Vec<Vec<Option<String>>>,
    /// Per column: the input field it is, renamed; its values are not changes.
    pub renamed_from: Vec<Option<String>>,
    pub rejected: Vec<ErrorRecord>,
    /// Per text field of what entered the node: the values seen in the sample, the most
    /// frequent first, for a filter's pick list.
    pub input_values: Vec<(String, Vec<String>)>,
    /// Records that entered the node, for "N in → M out".
    pub rows_in: usize,
    /// In-memory bytes per record, for cost estimates.
    pub bytes_per_record: f64,
}

fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    // "∅" is not in the app's fonts (it drew a box): nulls read as the word.
    let options = FormatOptions::default().with_null("null");
    let mut rows = Vec::new();
    for b in batches {
        let formatters: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
            .collect();
        for r in 0..b.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    rows
}

/// Puts the items of `row` in `order` (a permutation of its indices).
fn reorder<T>(row: &mut Vec<T>, order: &[usize]) {
    let mut old: Vec<Option<T>> = std::mem::take(row).into_iter().map(Some).collect();
    *row = order
        .iter()
        .map(|&i| old[i].take().expect("each index once"))
        .collect();
}

/// The most values of one field a pick list offers.
const MOST_VALUES: usize = 40;

/// Each text column's distinct values, the most frequent first (ties in the order seen),
/// at most [`MOST_VALUES`] of them.
fn text_values(batches: &[RecordBatch]) -> Vec<(String, Vec<String>)> {
    let Some(first) = batches.first() else {
        return Vec::new();
    };
    let schema = first.schema();
    let mut values = Vec::new();
    for (c, field) in schema.fields().iter().enumerate() {
        if !matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            continue;
        }
        // value → (count, first seen)
        let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
        for batch in batches {
            let Ok(column) = cast(batch.column(c), &DataType::Utf8) else {
                continue;
            };
            for value in column.as_string::<i32>().iter().flatten() {
                let order = seen.len();
                seen.entry(value.to_string()).or_insert((0, order)).0 += 1;
            }
        }
        let mut ranked: Vec<(String, (usize, usize))> = seen.into_iter().collect();
        ranked.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.1.1.cmp(&b.1.1)));
        ranked.truncate(MOST_VALUES);
        values.push((
            field.name().clone(),
            ranked.into_iter().map(|(v, _)| v).collect(),
        ));
    }
    values
}

impl PreviewTable {
    pub fn from_preview(p: &Preview) -> Self {
        let mut columns: Vec<(String, String)> = p
            .schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), describe(f.data_type())))
            .collect();
        let mut rows = cells(&p.batches);
        let rows_in: usize = p.input.iter().map(RecordBatch::num_rows).sum();
        let mut changed = Vec::new();
        let mut renamed_from = vec![None; columns.len()];
        if !p.input.is_empty() && rows_in == rows.len() {
            let input_names: Vec<String> = p.input[0]
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let before = cells(&p.input);
            let mut index: Vec<Option<usize>> = columns
                .iter()
                .map(|(n, _)| input_names.iter().position(|i| i == n))
                .collect();
            // A new name holding, record by record, the values of an input field that is
            // gone from the output: that field, renamed.
            let gone: Vec<usize> = (0..input_names.len())
                .filter(|j| !columns.iter().any(|(n, _)| n == &input_names[*j]))
                .collect();
            for c in 0..columns.len() {
                if index[c].is_some() {
                    continue;
                }
                let same = gone.iter().copied().find(|&j| {
                    !index.contains(&Some(j)) && rows.iter().zip(&before).all(|(a, b)| a[c] == b[j])
                });
                if let Some(j) = same {
                    index[c] = Some(j);
                    renamed_from[c] = Some(input_names[j].clone());
                }
            }
            changed = rows
                .iter()
                .zip(&before)
                .map(|(after, before)| {
                    after
                        .iter()
                        .zip(&index)
                        .map(|(a, i)| match i {
                            None => Some("(a new field)".to_string()),
                            Some(i) => (&before[*i] != a).then(|| before[*i].clone()),
                        })
                        .collect()
                })
                .collect();
            // The changed columns first, so the change is in view without scrolling.
            let touched = |c: &usize| {
                changed
                    .iter()
                    .any(|r: &Vec<Option<String>>| r[*c].is_some())
            };
            let order: Vec<usize> = (0..columns.len())
                .filter(touched)
                .chain((0..columns.len()).filter(|c| !touched(c)))
                .collect();
            reorder(&mut columns, &order);
            reorder(&mut renamed_from, &order);
            rows.iter_mut().for_each(|r| reorder(r, &order));
            changed.iter_mut().for_each(|r| reorder(r, &order));
        }
        let bytes: usize = p
            .batches
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        Self {
            columns,
            bytes_per_record: if rows.is_empty() {
                0.0
            } else {
                bytes as f64 / rows.len() as f64
            },
            rows,
            changed,
            renamed_from,
            rejected: p.rejected.clone(),
            input_values: text_values(&p.input),
            rows_in,
        }
    }
}
