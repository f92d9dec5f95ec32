//! `tributary import appflow`: an AppFlow flow definition as a flow file.

use std::path::PathBuf;

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
