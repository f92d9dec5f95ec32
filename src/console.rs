//! What the command prints, and how. Two rules hold for every line:
//!
//! - A reader that went away (`tributary run F --json | head`) is not an error of the
//!   command: what it would have read is dropped, and the command finishes its work and
//!   exits with its own status. `println!` would panic there, after a run had committed.
//! - Text that comes from a flow file or a service (node ids, labels, field names, error
//!   messages) reaches a terminal with its control and invisible characters spelled out,
//!   so a flow cannot recolour the terminal, retitle the window or hide a character in a
//!   name (`lake` and `la\u{200b}ke` print differently).

use std::fmt::{self, Write as _};
use std::io::Write;

/// Prints human text on stdout, a line.
macro_rules! outln {
    ($($t:tt)*) => { $crate::console::line(&mut std::io::stdout(), format_args!($($t)*), true) };
}

/// Prints human text on stderr, a line.
macro_rules! errln {
    ($($t:tt)*) => { $crate::console::line(&mut std::io::stderr(), format_args!($($t)*), true) };
}

/// Prints a machine-readable document (JSON, the schema) on stdout as it is: JSON escapes
/// control characters itself, and its strings must reach the reader unchanged.
macro_rules! out_raw {
    ($($t:tt)*) => { $crate::console::line(&mut std::io::stdout(), format_args!($($t)*), false) };
}

pub(crate) use {errln, out_raw, outln};

/// Writes `args` and a newline; a closed pipe ends the output quietly.
pub fn line(to: &mut impl Write, args: fmt::Arguments<'_>, human: bool) {
    let mut text = String::new();
    let _ = text.write_fmt(args);
    let text = if human { escape_controls(&text) } else { text };
    let written = to
        .write_all(text.as_bytes())
        .and_then(|()| to.write_all(b"\n"))
        .and_then(|()| to.flush());
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        // Nowhere better to say it; the command's status still tells the outcome.
        let _ = writeln!(std::io::stderr(), "cannot print: {e}");
    }
}

/// Whether a character would act on the terminal or hide itself instead of showing:
/// C0 and C1 controls (but line breaks and tabs), DEL, zero-width characters and the
/// bidirectional overrides.
fn is_hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c,
            '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}')
}

/// `text` with every hidden character written as `\u{…}`.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(is_hidden) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_invisible_characters_are_spelled_out() {
        assert_eq!(escape_controls("node `lake`\n\tok"), "node `lake`\n\tok");
        assert_eq!(
            escape_controls("\u{1b}]0;owned\u{7}\u{1b}[2J"),
            "\\u{1b}]0;owned\\u{7}\\u{1b}[2J"
        );
        assert_eq!(escape_controls("la\u{200b}ke"), "la\\u{200b}ke");
        assert_eq!(escape_controls("\u{202e}ekal"), "\\u{202e}ekal");
        assert_eq!(escape_controls("café ✔"), "café ✔");
    }

    #[test]
    fn a_closed_pipe_is_not_an_error() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        line(&mut Closed, format_args!("{}", "gone"), true);
    }
}
