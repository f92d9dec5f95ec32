//! The editor for formulas and scripts: the text in colour as it is typed, names that
//! cannot be found underlined at once (before the flow is checked), the incoming fields
//! and the functions offered as the user types a name (Tab or a click takes one), and how
//! the function around the cursor is called.
//!
//! egui_extras' own highlighter knows neither language (it colours C, Python, Rust and
//! TOML) and `syntect` brings grammars for neither, so the colouring reads the formula
//! with the formula's own lexer and a Rhai script with a small scanner below.

use std::ops::Range;

use egui::text::{CCursor, CCursorRange, LayoutJob, TextFormat};
use egui::text_edit::TextEditState;
use egui::{
    Color32, EventFilter, Id, Key, Modifiers, RichText, Stroke, TextBuffer, TextEdit, TextStyle, Ui,
};

use crate::transforms::formula::{self, FUNCTIONS, Piece};

/// The language of a setting's code, from its `x-code` schema extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Formula,
    Rhai,
}

impl Language {
    pub fn from_setting(name: &str) -> Option<Self> {
        match name {
            "formula" => Some(Language::Formula),
            "rhai" => Some(Language::Rhai),
            _ => None,
        }
    }
}

/// How a stretch of code is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Plain,
    Field,
    /// A field the node does not receive.
    UnknownField,
    Function,
    /// A function the language does not have.
    UnknownFunction,
    Keyword,
    Text,
    Number,
    Comment,
    /// What cannot be read at all.
    Mistake,
}

/// A name the code may use: an incoming field, or one computed before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    pub name: String,
    /// Shown beside it: the field's type, or where it comes from.
    pub detail: String,
}

/// The code's stretches that are not plain, in order.
pub fn classes(language: Language, text: &str, names: &[Name]) -> Vec<(Range<usize>, Class)> {
    let known = |name: &str| names.iter().any(|n| n.name == name);
    match language {
        Language::Formula => formula::pieces(text)
            .into_iter()
            .map(|(span, piece)| {
                let words = &text[span.start..span.end];
                let class = match piece {
                    Piece::Number => Class::Number,
                    Piece::Text => Class::Text,
                    Piece::Word => Class::Keyword,
                    Piece::Symbol => Class::Plain,
                    Piece::Mistake => Class::Mistake,
                    Piece::Field if known(words.trim_matches('`')) => Class::Field,
                    Piece::Field => Class::UnknownField,
                    Piece::Function if function(words).is_some() => Class::Function,
                    Piece::Function => Class::UnknownFunction,
                };
                (span.start..span.end, class)
            })
            .collect(),
        Language::Rhai => rhai_classes(text, &known),
    }
}

fn function(name: &str) -> Option<&'static str> {
    FUNCTIONS
        .iter()
        .find(|(f, ..)| f.eq_ignore_ascii_case(name))
        .map(|(_, _, usage)| *usage)
}

const RHAI_KEYWORDS: [&str; 27] = [
    "let", "const", "if", "else", "switch", "do", "while", "until", "loop", "for", "in", "break",
    "continue", "return", "throw", "try", "catch", "fn", "private", "import", "export", "as",
    "true", "false", "this", "global", "is",
];

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Rhai's comments, strings, numbers, keywords and calls; `record.Name` is a field.
fn rhai_classes(text: &str, known: &dyn Fn(&str) -> bool) -> Vec<(Range<usize>, Class)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let rest = &text[i..];
        let (end, class) = if rest.starts_with("//") {
            (i + rest.find('\n').unwrap_or(rest.len()), Class::Comment)
        } else if rest.starts_with("/*") {
            (
                i + rest.find("*/").map_or(rest.len(), |k| k + 2),
                Class::Comment,
            )
        } else if c == '"' || c == '`' || c == '\'' {
            let mut end = text.len();
            let mut chars = rest.char_indices().skip(1);
            while let Some((k, ch)) = chars.next() {
                if ch == '\\' {
                    chars.next();
                } else if ch == c {
                    end = i + k + 1;
                    break;
                }
            }
            (end, Class::Text)
        } else if c.is_ascii_digit() {
            let k = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.'))
                .unwrap_or(rest.len());
            (i + k, Class::Number)
        } else if is_name_char(c) {
            let k = rest.find(|ch| !is_name_char(ch)).unwrap_or(rest.len());
            let word = &rest[..k];
            let after_record = text[..i].strip_suffix('.').is_some_and(|before| {
                before.ends_with("record")
                    && !before[..before.len() - 6]
                        .chars()
                        .next_back()
                        .is_some_and(is_name_char)
            });
            let class = if after_record {
                if known(word) {
                    Class::Field
                } else {
                    Class::UnknownField
                }
            } else if RHAI_KEYWORDS.contains(&word) {
                Class::Keyword
            } else if rest[k..].trim_start().starts_with('(') {
                Class::Function
            } else {
                Class::Plain
            };
            (i + k, class)
        } else {
            i += c.len_utf8();
            continue;
        };
        if class != Class::Plain {
            out.push((i..end, class));
        }
        i = end;
    }
    out
}

/// One offer: what the list shows and what replaces the name being typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub label: String,
    pub insert: String,
    pub detail: String,
}

/// What may complete the name at the cursor: the stretch it replaces and the offers, best
/// first.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub replace: Range<usize>,
    pub suggestions: Vec<Suggestion>,
}

/// At most this many offers at once: a row a person can read.
const OFFERS: usize = 8;

/// What may complete the name that ends at `cursor` (a byte offset); none inside text or
/// a comment, or when nothing fits.
pub fn complete(
    language: Language,
    text: &str,
    cursor: usize,
    names: &[Name],
) -> Option<Completion> {
    let (replace, suggestions) = match language {
        Language::Formula => complete_formula(text, cursor, names)?,
        Language::Rhai => complete_rhai(text, cursor, names)?,
    };
    let typed = &text[replace.clone()];
    let suggestions: Vec<Suggestion> = suggestions
        .into_iter()
        .filter(|s| s.insert != typed)
        .take(OFFERS)
        .collect();
    (!suggestions.is_empty()).then_some(Completion {
        replace,
        suggestions,
    })
}

/// The names containing `typed` (ignoring case): those that start with it first.
fn matching<'a>(names: &'a [Name], typed: &str) -> Vec<&'a Name> {
    let typed = typed.to_lowercase();
    let mut found: Vec<(bool, &Name)> = names
        .iter()
        .filter_map(|n| {
            let lower = n.name.to_lowercase();
            lower
                .contains(&typed)
                .then(|| (!lower.starts_with(&typed), n))
        })
        .collect();
    found.sort_by_key(|(later, _)| *later);
    found.into_iter().map(|(_, n)| n).collect()
}

fn complete_formula(
    text: &str,
    cursor: usize,
    names: &[Name],
) -> Option<(Range<usize>, Vec<Suggestion>)> {
    let (span, piece) = formula::pieces(text)
        .into_iter()
        .find(|(s, _)| s.start < cursor && cursor <= s.end)?;
    let word = &text[span.start..cursor];
    let field = |n: &Name, quoted: bool| Suggestion {
        label: n.name.clone(),
        insert: if quoted || !plain_formula_name(&n.name) {
            format!("`{}`", n.name)
        } else {
            n.name.clone()
        },
        detail: n.detail.clone(),
    };
    match piece {
        // A field name being typed in backquotes.
        Piece::Mistake if word.starts_with('`') => {
            let offers = matching(names, &word[1..])
                .into_iter()
                .map(|n| field(n, true))
                .collect();
            Some((span.start..cursor, offers))
        }
        Piece::Field | Piece::Function | Piece::Word if cursor == span.end => {
            if word.starts_with('`') {
                return None;
            }
            let called = text[cursor..].trim_start().starts_with('(');
            let mut offers: Vec<Suggestion> = matching(names, word)
                .into_iter()
                .map(|n| field(n, false))
                .collect();
            let lower = word.to_lowercase();
            offers.extend(
                FUNCTIONS
                    .iter()
                    .filter(|(f, ..)| f.starts_with(&lower))
                    .map(|(f, _, usage)| Suggestion {
                        label: format!("{f}(…)"),
                        insert: if called {
                            f.to_string()
                        } else {
                            format!("{f}(")
                        },
                        detail: usage.to_string(),
                    }),
            );
            Some((span.start..cursor, offers))
        }
        _ => None,
    }
}

/// A field name a formula may write without backquotes.
fn plain_formula_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(is_name_char)
        && !["and", "or", "not", "true", "false", "null"]
            .iter()
            .any(|w| w.eq_ignore_ascii_case(name))
}

fn complete_rhai(
    text: &str,
    cursor: usize,
    names: &[Name],
) -> Option<(Range<usize>, Vec<Suggestion>)> {
    let before = &text[..cursor];
    // `record["Na` — a field name in a string.
    if let Some(start) = before.rfind("record[\"").map(|k| k + 8)
        && !before[start..].contains(['"', '\n'])
    {
        let end = if text[cursor..].starts_with("\"]") {
            cursor + 2
        } else {
            cursor
        };
        let offers = matching(names, &before[start..])
            .into_iter()
            .map(|n| Suggestion {
                label: n.name.clone(),
                insert: format!("{}\"]", n.name.replace('\\', "\\\\").replace('"', "\\\"")),
                detail: n.detail.clone(),
            })
            .collect();
        return Some((start..end, offers));
    }
    let inside = rhai_classes(text, &|_| true)
        .into_iter()
        .any(|(r, class)| match class {
            // Typing at the end of a line comment still writes in it.
            Class::Comment => r.start < cursor && cursor <= r.end,
            // Text with no closing quote runs on to the cursor.
            Class::Text => {
                let closed = r.len() > 1 && text[r.clone()].ends_with(&text[r.start..r.start + 1]);
                r.start < cursor && (cursor < r.end || !closed)
            }
            _ => false,
        });
    if inside {
        return None;
    }
    let start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_name_char(*c))
        .last()
        .map_or(cursor, |(k, _)| k);
    let word = &before[start..];
    let on_record = before[..start].strip_suffix('.').is_some_and(|b| {
        b.ends_with("record")
            && !b[..b.len() - 6]
                .chars()
                .next_back()
                .is_some_and(is_name_char)
    });
    if on_record {
        // `record.Na`, or `record.` alone: a field; one that is no plain name is
        // written `record["Close Date"]`.
        let offers = matching(names, word)
            .into_iter()
            .map(|n| {
                let plain = n
                    .name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && n.name.chars().all(is_name_char)
                    && !RHAI_KEYWORDS.contains(&n.name.as_str());
                Suggestion {
                    label: n.name.clone(),
                    insert: if plain {
                        format!(".{}", n.name)
                    } else {
                        format!(
                            "[\"{}\"]",
                            n.name.replace('\\', "\\\\").replace('"', "\\\"")
                        )
                    },
                    detail: n.detail.clone(),
                }
            })
            .collect();
        return Some((start - 1..cursor, offers));
    }
    if word.is_empty() || word.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let offers = [
        ("record", "the record, a map of its fields"),
        ("records", "in batch mode: the batch, an array of records"),
    ]
    .into_iter()
    .filter(|(name, _)| name.starts_with(word))
    .map(|(name, detail)| Suggestion {
        label: name.to_string(),
        insert: name.to_string(),
        detail: detail.to_string(),
    })
    .collect();
    Some((start..cursor, offers))
}

/// How the formula function whose parentheses hold the cursor is called.
pub fn usage_at(language: Language, text: &str, cursor: usize) -> Option<&'static str> {
    if language != Language::Formula {
        return None;
    }
    let mut open: Vec<Option<&str>> = Vec::new();
    let mut last_function = None;
    for (span, piece) in formula::pieces(text) {
        if span.start >= cursor {
            break;
        }
        let words = &text[span.start..span.end];
        match (piece, words) {
            (Piece::Function, name) => {
                last_function = Some(name);
                continue;
            }
            (Piece::Symbol, "(") => open.push(last_function),
            (Piece::Symbol, ")") => {
                open.pop();
            }
            _ => {}
        }
        last_function = None;
    }
    open.into_iter().rev().find_map(|f| f.and_then(function))
}

/// The colours of each class, fitting the light or dark look.
fn format_of(ui: &Ui, class: Class) -> TextFormat {
    let visuals = ui.visuals();
    let dark = visuals.dark_mode;
    let pick = |on_dark: [u8; 3], on_light: [u8; 3]| {
        let [r, g, b] = if dark { on_dark } else { on_light };
        Color32::from_rgb(r, g, b)
    };
    let color = match class {
        Class::Plain => visuals.text_color(),
        Class::Field => pick([140, 200, 255], [11, 92, 173]),
        Class::Function => pick([215, 168, 255], [123, 47, 168]),
        Class::Keyword => pick([255, 184, 108], [166, 77, 0]),
        Class::Text => pick([165, 214, 167], [46, 125, 50]),
        Class::Number => pick([240, 198, 116], [138, 109, 0]),
        Class::Comment => visuals.weak_text_color(),
        Class::UnknownField | Class::UnknownFunction | Class::Mistake => visuals.error_fg_color,
    };
    let mut format = TextFormat::simple(TextStyle::Monospace.resolve(ui.style()), color);
    if matches!(
        class,
        Class::UnknownField | Class::UnknownFunction | Class::Mistake
    ) {
        format.underline = Stroke::new(1.0, visuals.error_fg_color);
    }
    format
}

/// The text laid out in colour.
fn highlight(ui: &Ui, language: Language, text: &str, names: &[Name]) -> LayoutJob {
    let mut job = LayoutJob::default();
    let mut at = 0;
    for (range, class) in classes(language, text, names) {
        if range.start > at {
            job.append(&text[at..range.start], 0.0, format_of(ui, Class::Plain));
        }
        job.append(&text[range.clone()], 0.0, format_of(ui, class));
        at = range.end;
    }
    if at < text.len() {
        job.append(&text[at..], 0.0, format_of(ui, Class::Plain));
    }
    job
}

fn byte_of(text: &str, char_index: usize) -> usize {
    text.char_indices()
        .nth(char_index)
        .map_or(text.len(), |(k, _)| k)
}

/// Puts the suggestion in place of the name being typed, with the cursor after it and the
/// focus back in the editor.
fn accept(ui: &Ui, id: Id, text: &mut String, replace: Range<usize>, suggestion: &Suggestion) {
    text.replace_range(replace.clone(), &suggestion.insert);
    let after = text[..replace.start + suggestion.insert.len()]
        .chars()
        .count();
    let mut state = TextEditState::load(ui.ctx(), id).unwrap_or_default();
    state
        .cursor
        .set_char_range(Some(CCursorRange::one(CCursor::new(after))));
    state.store(ui.ctx(), id);
    ui.memory_mut(|m| m.request_focus(id));
    ui.ctx().request_repaint();
}

/// Draws the editor for the code in `text`, its id from `id`; true when the text changed.
/// `labelled_by` is the heading that names it.
pub fn editor(
    ui: &mut Ui,
    text: &mut String,
    language: Language,
    names: &[Name],
    id: Id,
    labelled_by: Option<Id>,
) -> bool {
    // The offers stay up while the pointer is on them, though a press there takes the
    // focus from the editor, so that a click can land.
    let open_id = id.with("offers");
    let kept_open = ui.data(|d| d.get_temp::<bool>(open_id)).unwrap_or(false);
    let mut changed = false;
    if ui.memory(|m| m.has_focus(id)) {
        let cursor = TextEditState::load(ui.ctx(), id)
            .and_then(|s| s.cursor.char_range())
            .map(|r| byte_of(text, r.primary.index.0));
        if let Some(offer) = cursor.and_then(|at| complete(language, text, at, names))
            && ui.input_mut(|i| i.consume_key(Modifiers::NONE, Key::Tab))
        {
            accept(ui, id, text, offer.replace, &offer.suggestions[0]);
            changed = true;
        }
    }
    let mut layouter = |ui: &Ui, buffer: &dyn TextBuffer, wrap_width: f32| {
        let mut job = highlight(ui, language, buffer.as_str(), names);
        job.wrap.max_width = wrap_width;
        ui.fonts_mut(|f| f.layout_job(job))
    };
    let (rows, hint) = match language {
        Language::Formula => (1, "e.g. round(Amount * 1.2, 2)"),
        Language::Rhai => (8, "e.g. record.Score = record.Amount * 2;"),
    };
    let output = TextEdit::multiline(text)
        .id(id)
        .font(TextStyle::Monospace)
        .lock_focus(language == Language::Rhai)
        .desired_rows(rows)
        .desired_width(f32::INFINITY)
        .hint_text(hint)
        .layouter(&mut layouter)
        .show(ui);
    let mut response = output.response.response;
    if let Some(heading) = labelled_by {
        response = response.labelled_by(heading);
    }
    changed |= response.changed();
    let focused = response.has_focus();
    let cursor = output
        .cursor_range
        .map(|r| byte_of(text, r.primary.index.0));
    let mut over_offers = false;
    let offer = (focused || kept_open)
        .then_some(cursor)
        .flatten()
        .and_then(|at| complete(language, text, at, names));
    if let Some(offer) = offer {
        if focused {
            // Tab is the editor's while there is an offer to take, not the next widget's:
            // egui moves the focus before this code sees the key.
            let filter = EventFilter {
                tab: true,
                horizontal_arrows: true,
                vertical_arrows: true,
                escape: false,
            };
            ui.memory_mut(|m| m.set_focus_lock_filter(id, filter));
        }
        let row = ui.horizontal_wrapped(|ui| {
            let mut taken = None;
            for (k, s) in offer.suggestions.iter().enumerate() {
                let label = RichText::new(&s.label).monospace();
                if ui
                    .selectable_label(k == 0, label)
                    .on_hover_text(&s.detail)
                    .clicked()
                {
                    taken = Some(s);
                }
            }
            ui.label(RichText::new("Tab takes the first").weak().small());
            taken
        });
        over_offers = row.response.contains_pointer();
        if let Some(s) = row.inner {
            accept(ui, id, text, offer.replace, s);
            changed = true;
        }
    } else if let Some(usage) = cursor
        .filter(|_| focused)
        .and_then(|at| usage_at(language, text, at))
    {
        ui.label(RichText::new(usage).monospace().weak());
    }
    ui.data_mut(|d| d.insert_temp(open_id, focused || over_offers));
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Name> {
        list.iter()
            .map(|n| Name {
                name: n.to_string(),
                detail: "number".into(),
            })
            .collect()
    }

    fn shown(language: Language, text: &str, known: &[&str]) -> Vec<(String, Class)> {
        classes(language, text, &names(known))
            .into_iter()
            .map(|(r, c)| (text[r].to_string(), c))
            .collect()
    }

    fn offers(language: Language, text: &str, known: &[&str]) -> Option<(String, Vec<String>)> {
        let cursor = text.find('|').expect("a cursor");
        let text = text.replace('|', "");
        complete(language, &text, cursor, &names(known)).map(|c| {
            (
                text[c.replace].to_string(),
                c.suggestions.into_iter().map(|s| s.insert).collect(),
            )
        })
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn formulas_are_coloured_by_what_each_name_is() {
        use Class::*;
        assert_eq!(
            shown(
                Language::Formula,
                "rond(Amout, 2) & upper(`Close Date`) or \"x",
                &["Amount", "Close Date"]
            ),
            vec![
                ("rond".into(), UnknownFunction),
                ("(".into(), Plain),
                ("Amout".into(), UnknownField),
                (",".into(), Plain),
                ("2".into(), Number),
                (")".into(), Plain),
                ("&".into(), Plain),
                ("upper".into(), Function),
                ("(".into(), Plain),
                ("`Close Date`".into(), Field),
                (")".into(), Plain),
                ("or".into(), Keyword),
                ("\"x".into(), Mistake),
            ]
        );
    }

    #[test]
    fn scripts_are_coloured_with_their_fields() {
        use Class::*;
        let script = "// weigh\nlet x = record.Amount * 2.5; record.Amout = \"a \\\" b\";\nif x > 10 { throw(`big`) }";
        assert_eq!(
            shown(Language::Rhai, script, &["Amount"]),
            vec![
                ("// weigh".into(), Comment),
                ("let".into(), Keyword),
                ("Amount".into(), Field),
                ("2.5".into(), Number),
                ("Amout".into(), UnknownField),
                ("\"a \\\" b\"".into(), Text),
                ("if".into(), Keyword),
                ("10".into(), Number),
                ("throw".into(), Keyword),
                ("`big`".into(), Text),
            ]
        );
    }

    #[test]
    fn formula_names_are_offered_as_they_are_typed() {
        let known = ["Amount", "AccountId", "Close Date", "Stage"];
        assert_eq!(
            offers(Language::Formula, "round(am|", &known),
            Some(("am".into(), s(&["Amount"])))
        );
        // A name with a space is written in backquotes; one that contains what is typed
        // comes after those that start with it.
        assert_eq!(
            offers(Language::Formula, "`clo|", &known),
            Some(("`clo".into(), s(&["`Close Date`"])))
        );
        assert_eq!(
            offers(Language::Formula, "da|", &known),
            Some(("da".into(), s(&["`Close Date`", "day(", "date_trunc("])))
        );
        // Already a call: the name alone.
        assert_eq!(
            offers(Language::Formula, "rou|(Amount, 2)", &known),
            Some(("rou".into(), s(&["round"])))
        );
        // Inside text, after a complete name, or after a symbol: nothing.
        assert_eq!(offers(Language::Formula, "\"am|\"", &known), None);
        assert_eq!(offers(Language::Formula, "Amount|", &known), None);
        assert_eq!(offers(Language::Formula, "Amount + |", &known), None);
        assert_eq!(offers(Language::Formula, "zz|", &known), None);
    }

    #[test]
    fn script_fields_are_offered_after_record() {
        let known = ["Amount", "Close Date"];
        assert_eq!(
            offers(Language::Rhai, "let a = record.am|;", &known),
            Some((".am".into(), s(&[".Amount"])))
        );
        assert_eq!(
            offers(Language::Rhai, "record.|", &known),
            Some((".".into(), s(&[".Amount", "[\"Close Date\"]"])))
        );
        assert_eq!(
            offers(Language::Rhai, "record[\"clo|\"]", &known),
            Some(("clo\"]".into(), s(&["Close Date\"]"])))
        );
        assert_eq!(
            offers(Language::Rhai, "let x = rec|", &known),
            Some(("rec".into(), s(&["record", "records"])))
        );
        assert_eq!(offers(Language::Rhai, "// record.am|", &known), None);
        assert_eq!(offers(Language::Rhai, "\"rec|\"", &known), None);
        assert_eq!(offers(Language::Rhai, "let x = 1|", &known), None);
    }

    #[test]
    fn the_call_around_the_cursor_says_how_it_is_called() {
        let at = |t: &str| usage_at(Language::Formula, &t.replace('|', ""), t.find('|').unwrap());
        assert_eq!(at("round(Amount * |"), Some("round(number, places)"));
        assert_eq!(at("round(upper(x), |"), Some("round(number, places)"));
        assert_eq!(at("round(upper(|"), Some("upper(text)"));
        assert_eq!(at("round((1 + |"), Some("round(number, places)"));
        assert_eq!(at("round(1) + |"), None);
        assert_eq!(usage_at(Language::Rhai, "round(", 6), None);
    }
}
