//! `tributary import appflow` and `tributary export appflow`: AppFlow flow definitions
//! to flow files and back.

use std::path::PathBuf;

use indexmap::IndexMap;

use anyhow::Context as _;
use clap::Subcommand;

use tributary::appflow::{self, ImportOptions};
use tributary::paths::Dirs;

use crate::INVALID;
use crate::console::{errln, out_raw, outln};

#[derive(Subcommand)]
pub enum ImportAction {
    /// An AppFlow flow: a CreateFlow request (`aws appflow create-flow --cli-input-json`),
    /// the answer of `aws appflow describe-flow`, or a CloudFormation template (JSON or
    /// YAML) with `AWS::AppFlow::Flow` resources. What cannot be carried over is listed,
    /// and nothing is written unless `--allow-partial` is given.
    Appflow {
        file: PathBuf,
        /// Where to write the flow file; standard output when left out.
        #[arg(short = 'o', long = "output", value_name = "OUT.json")]
        output: Option<PathBuf>,
        /// The template's flow to import (its logical id), when it holds several.
        #[arg(long, value_name = "NAME")]
        flow: Option<String>,
        /// Write the flow even when some of the AppFlow flow could not be carried over;
        /// its description lists what.
        #[arg(long)]
        allow_partial: bool,
    },
}

/// `tributary export appflow`.
pub fn export(
    path: PathBuf,
    params: Vec<(String, String)>,
    output: Option<PathBuf>,
    cloudformation: bool,
    allow_partial: bool,
) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let flow = match tributary::flow::Flow::from_json(&text, &path.display().to_string()) {
        Ok(flow) => flow,
        Err(problem) => {
            errln!("{problem}");
            return Ok(INVALID);
        }
    };
    let overrides: IndexMap<String, String> = params.into_iter().collect();
    let exported = match appflow::export(&flow, &overrides) {
        Ok(exported) => exported,
        Err(refused) => {
            errln!(
                "{}: AppFlow cannot run this flow: {refused}",
                path.display()
            );
            return Ok(INVALID);
        }
    };
    if !exported.gaps.is_empty() {
        errln!(
            "{}: {} setting{} of the flow {} no counterpart in AppFlow:",
            path.display(),
            exported.gaps.len(),
            if exported.gaps.len() == 1 { "" } else { "s" },
            if exported.gaps.len() == 1 {
                "has"
            } else {
                "have"
            },
        );
        for gap in &exported.gaps {
            errln!("  {gap}");
        }
        if !allow_partial {
            errln!("nothing written; --allow-partial writes the definition without them");
            return Ok(INVALID);
        }
    }
    let document = match cloudformation {
        true => appflow::cloudformation(&exported.request, &logical_id(&flow.name)),
        false => exported.request,
    };
    let mut json = serde_json::to_string_pretty(&document)?;
    json.push('\n');
    match output {
        Some(out) => {
            std::fs::write(&out, &json)
                .with_context(|| format!("cannot write {}", out.display()))?;
            outln!("{}: the AppFlow flow \"{}\"", out.display(), flow.name);
        }
        None => out_raw!("{json}"),
    }
    Ok(0)
}

/// A CloudFormation logical id for a flow's name: letters and digits, `Flow` when none.
fn logical_id(name: &str) -> String {
    let mut id = String::new();
    let mut upper = true;
    for c in name.chars() {
        match c.is_ascii_alphanumeric() {
            true if upper => {
                id.push(c.to_ascii_uppercase());
                upper = false;
            }
            true => id.push(c),
            false => upper = true,
        }
    }
    match id.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => id,
        _ => format!("Flow{id}"),
    }
}

pub fn execute(action: ImportAction, dirs: &Dirs) -> anyhow::Result<u8> {
    let ImportAction::Appflow {
        file,
        output,
        flow,
        allow_partial,
    } = action;
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let connections = tributary::auth::load(dirs)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .map(|(name, c)| (name, c.connector))
        .collect();
    let options = ImportOptions { flow, connections };
    let mut imported = match appflow::import(&text, &options) {
        Ok(imported) => imported,
        Err(problem) => {
            errln!("{}: {problem}", file.display());
            return Ok(INVALID);
        }
    };
    for note in &imported.notes {
        errln!("note: {note}");
    }
    if !imported.gaps.is_empty() {
        errln!(
            "{}: {} part{} of the AppFlow flow {} not carried over:",
            file.display(),
            imported.gaps.len(),
            if imported.gaps.len() == 1 { "" } else { "s" },
            if imported.gaps.len() == 1 {
                "is"
            } else {
                "are"
            },
        );
        for gap in &imported.gaps {
            errln!("  {gap}");
        }
        if !allow_partial {
            errln!("nothing written; --allow-partial writes the flow without them");
            return Ok(INVALID);
        }
        appflow::import::note_gaps(&mut imported);
    }
    let json = imported.flow.to_json();
    match output {
        Some(path) => {
            std::fs::write(&path, &json)
                .with_context(|| format!("cannot write {}", path.display()))?;
            outln!(
                "{}: \"{}\" with {} nodes",
                path.display(),
                imported.flow.name,
                imported.flow.nodes.len()
            );
        }
        None => out_raw!("{json}"),
    }
    Ok(0)
}
