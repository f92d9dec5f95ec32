//! The formula language's text: a lexer and a precedence-climbing parser that keep where
//! everything is, so that every mistake is said at its line and column.
//!
//! ```text
//! expression := or
//! or         := and ("or" and)*
//! and        := not ("and" not)*
//! not        := "not" not | comparison
//! comparison := sum (("=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=") sum)?
//! sum        := product (("+" | "-" | "&") product)*
//! product    := unary (("*" | "/" | "%") unary)*
//! unary      := "-" unary | primary
//! primary    := number | "text" | true | false | null | field | `any field` | name "(" args ")" | "(" expression ")"
//! ```

/// A place in the expression's text: a byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    fn to(self, other: Span) -> Span {
        Span {
            start: self.start,
            end: other.end,
        }
    }
}

/// A mistake in a formula, and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Mistake {
    pub span: Span,
    pub message: String,
}

impl Mistake {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Mistake {
            span,
            message: message.into(),
        }
    }

    /// "line 1, column 7: …", counting characters from 1.
    pub fn in_words(&self, text: &str) -> String {
        let before = &text[..self.span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        format!("line {line}, column {column}: {}", self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
    Concat,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "+",
            Subtract => "-",
            Multiply => "*",
            Divide => "/",
            Remainder => "%",
            Concat => "&",
            Equal => "=",
            NotEqual => "!=",
            Less => "<",
            LessOrEqual => "<=",
            Greater => ">",
            GreaterOrEqual => ">=",
            And => "and",
            Or => "or",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Integer(i64),
    Number(f64),
    Text(String),
    Boolean(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Ast {
    Literal(Literal, Span),
    Field(String, Span),
    Negate(Box<Ast>, Span),
    Not(Box<Ast>, Span),
    Binary(BinaryOp, Box<Ast>, Box<Ast>, Span),
    Call(String, Vec<Ast>, Span),
}

impl Ast {
    pub fn span(&self) -> Span {
        match self {
            Ast::Literal(_, s)
            | Ast::Field(_, s)
            | Ast::Negate(_, s)
            | Ast::Not(_, s)
            | Ast::Binary(.., s)
            | Ast::Call(_, _, s) => *s,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Integer(i64),
    Number(f64),
    Text(String),
    Name(String),
    /// A field name in backquotes.
    Quoted(String),
    Symbol(&'static str),
    End,
}

const SYMBOLS: [&str; 17] = [
    "==", "!=", "<>", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%", "&", "(", ")", ",",
];

fn lex(text: &str) -> Result<Vec<(Token, Span)>, Mistake> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(start) = next_start(text, i) {
        let (token, span) = token_at(text, start)?;
        i = span.end;
        tokens.push((token, span));
    }
    tokens.push((
        Token::End,
        Span {
            start: text.len(),
            end: text.len(),
        },
    ));
    Ok(tokens)
}

/// What a stretch of a formula's text is, for showing the formula in colour as it is
/// typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Number,
    Text,
    /// A field by name, plain or in backquotes.
    Field,
    /// A name followed by `(`.
    Function,
    /// `and`, `or`, `not`, `true`, `false`, `null`.
    Word,
    Symbol,
    /// What cannot be read: a character that means nothing, text with no closing quote.
    Mistake,
}

/// The formula cut into pieces, in order, white space left out. Never fails: a half-typed
/// formula is read as far as it goes, and what cannot be read is a `Mistake` piece.
pub fn pieces(text: &str) -> Vec<(Span, Piece)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(start) = next_start(text, i) {
        let (span, piece) = match token_at(text, start) {
            Ok((token, span)) => {
                let piece = match token {
                    Token::Integer(_) | Token::Number(_) => Piece::Number,
                    Token::Text(_) => Piece::Text,
                    Token::Quoted(_) => Piece::Field,
                    Token::Symbol(_) => Piece::Symbol,
                    Token::Name(name) => {
                        let called =
                            next_start(text, span.end).is_some_and(|k| text[k..].starts_with('('));
                        let word = ["and", "or", "not", "true", "false", "null"]
                            .iter()
                            .any(|w| w.eq_ignore_ascii_case(&name));
                        match (called, word) {
                            (true, _) => Piece::Function,
                            (false, true) => Piece::Word,
                            (false, false) => Piece::Field,
                        }
                    }
                    Token::End => break,
                };
                (span, piece)
            }
            // The mistake's own span may stop short of where it starts (an unclosed quote
            // runs to the end): the piece covers at least one character.
            Err(mistake) => {
                let one = start + text[start..].chars().next().map_or(0, char::len_utf8);
                let end = mistake.span.end.max(one);
                (Span { start, end }, Piece::Mistake)
            }
        };
        i = span.end;
        out.push((span, piece));
    }
    out
}

/// Where the next token starts at or after `i`, past any white space.
fn next_start(text: &str, i: usize) -> Option<usize> {
    text[i..]
        .char_indices()
        .find(|(_, c)| !c.is_whitespace())
        .map(|(k, _)| i + k)
}

/// The token that starts at `start` (not white space).
fn token_at(text: &str, start: usize) -> Result<(Token, Span), Mistake> {
    let bytes = text.as_bytes();
    let i = start;
    let c = text[i..].chars().next().expect("inside the text");
    let span = |end: usize| Span { start, end };
    if c.is_ascii_digit() || (c == '.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
        let mut end = i;
        let mut fraction = false;
        while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
            if bytes[end] == b'.' {
                if fraction {
                    break;
                }
                fraction = true;
            }
            end += 1;
        }
        if end < bytes.len() && (bytes[end] == b'e' || bytes[end] == b'E') {
            let mut exp = end + 1;
            if exp < bytes.len() && (bytes[exp] == b'+' || bytes[exp] == b'-') {
                exp += 1;
            }
            if exp < bytes.len() && bytes[exp].is_ascii_digit() {
                fraction = true;
                end = exp;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
            }
        }
        let word = &text[start..end];
        let token = if fraction {
            Token::Number(
                word.parse()
                    .map_err(|_| Mistake::new(span(end), format!("`{word}` is not a number")))?,
            )
        } else {
            match word.parse() {
                Ok(n) => Token::Integer(n),
                Err(_) => {
                    Token::Number(word.parse().map_err(|_| {
                        Mistake::new(span(end), format!("`{word}` is not a number"))
                    })?)
                }
            }
        };
        return Ok((token, span(end)));
    }
    if c.is_alphabetic() || c == '_' {
        let end = text[i..]
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(text.len(), |(k, _)| i + k);
        return Ok((Token::Name(text[start..end].to_string()), span(end)));
    }
    if c == '"' || c == '`' {
        let mut value = String::new();
        let mut chars = text[i + 1..].char_indices();
        let mut end = None;
        while let Some((k, ch)) = chars.next() {
            match ch {
                '\\' if c == '"' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, other)) => value.push(other),
                    None => break,
                },
                ch if ch == c => {
                    end = Some(i + 1 + k + 1);
                    break;
                }
                ch => value.push(ch),
            }
        }
        let Some(end) = end else {
            let what = if c == '"' { "text" } else { "field name" };
            return Err(Mistake::new(
                span(text.len()),
                format!("this {what} has no closing {c}"),
            ));
        };
        let token = if c == '"' {
            Token::Text(value)
        } else {
            Token::Quoted(value)
        };
        return Ok((token, span(end)));
    }
    match SYMBOLS.iter().find(|s| text[i..].starts_with(**s)) {
        Some(symbol) => Ok((Token::Symbol(symbol), span(i + symbol.len()))),
        None => {
            let hint = match c {
                '\'' => ": text goes in double quotes, a field name with spaces in backquotes",
                _ => "",
            };
            Err(Mistake::new(
                span(i + c.len_utf8()),
                format!("`{c}` means nothing here{hint}"),
            ))
        }
    }
}

struct Parser {
    tokens: Vec<(Token, Span)>,
    at: usize,
}

/// Parses a whole expression.
pub fn parse(text: &str) -> Result<Ast, Mistake> {
    if text.trim().is_empty() {
        return Err(Mistake::new(
            Span { start: 0, end: 0 },
            "write an expression, e.g. round(Amount * 1.2, 2)",
        ));
    }
    let mut parser = Parser {
        tokens: lex(text)?,
        at: 0,
    };
    let ast = parser.or()?;
    match parser.peek() {
        (Token::End, _) => Ok(ast),
        (Token::Name(next), _) if matches!(ast, Ast::Field(..)) => {
            let Ast::Field(before, span) = ast else {
                unreachable!("matched above")
            };
            Err(Mistake::new(
                span,
                format!("a field name with spaces goes in backquotes: `{before} {next}`"),
            ))
        }
        (_, span) => Err(Mistake::new(
            span,
            "an operator or the end was expected here",
        )),
    }
}

impl Parser {
    fn peek(&self) -> (Token, Span) {
        self.tokens[self.at].clone()
    }

    fn next(&mut self) -> (Token, Span) {
        let t = self.peek();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        t
    }

    fn word(&self, word: &str) -> bool {
        matches!(&self.tokens[self.at].0, Token::Name(n) if n.eq_ignore_ascii_case(word))
    }

    fn symbol(&self, symbols: &[&'static str]) -> Option<&'static str> {
        match &self.tokens[self.at].0 {
            Token::Symbol(s) if symbols.contains(s) => Some(s),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Ast, Mistake> {
        let mut left = self.and()?;
        while self.word("or") {
            self.next();
            let right = self.and()?;
            left = binary(BinaryOp::Or, left, right);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Ast, Mistake> {
        let mut left = self.not()?;
        while self.word("and") {
            self.next();
            let right = self.not()?;
            left = binary(BinaryOp::And, left, right);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Ast, Mistake> {
        if self.word("not") {
            let (_, span) = self.next();
            let inner = self.not()?;
            let whole = span.to(inner.span());
            return Ok(Ast::Not(Box::new(inner), whole));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Ast, Mistake> {
        let left = self.sum()?;
        let op = match self.symbol(&["=", "==", "!=", "<>", "<", "<=", ">", ">="]) {
            Some("=" | "==") => BinaryOp::Equal,
            Some("!=" | "<>") => BinaryOp::NotEqual,
            Some("<") => BinaryOp::Less,
            Some("<=") => BinaryOp::LessOrEqual,
            Some(">") => BinaryOp::Greater,
            Some(">=") => BinaryOp::GreaterOrEqual,
            _ => return Ok(left),
        };
        self.next();
        let right = self.sum()?;
        if let Some(s) = self.symbol(&["=", "==", "!=", "<>", "<", "<=", ">", ">="]) {
            let span = self.peek().1;
            return Err(Mistake::new(
                span,
                format!("comparisons do not chain: join them with `and` instead of a second `{s}`"),
            ));
        }
        Ok(binary(op, left, right))
    }

    fn sum(&mut self) -> Result<Ast, Mistake> {
        let mut left = self.product()?;
        while let Some(s) = self.symbol(&["+", "-", "&"]) {
            self.next();
            let right = self.product()?;
            let op = match s {
                "+" => BinaryOp::Add,
                "-" => BinaryOp::Subtract,
                _ => BinaryOp::Concat,
            };
            left = binary(op, left, right);
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Ast, Mistake> {
        let mut left = self.unary()?;
        while let Some(s) = self.symbol(&["*", "/", "%"]) {
            self.next();
            let right = self.unary()?;
            let op = match s {
                "*" => BinaryOp::Multiply,
                "/" => BinaryOp::Divide,
                _ => BinaryOp::Remainder,
            };
            left = binary(op, left, right);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Ast, Mistake> {
        if self.symbol(&["-"]).is_some() {
            let (_, span) = self.next();
            let inner = self.unary()?;
            let whole = span.to(inner.span());
            return Ok(match inner {
                Ast::Literal(Literal::Integer(n), _) => Ast::Literal(Literal::Integer(-n), whole),
                Ast::Literal(Literal::Number(n), _) => Ast::Literal(Literal::Number(-n), whole),
                inner => Ast::Negate(Box::new(inner), whole),
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Ast, Mistake> {
        let (token, span) = self.next();
        match token {
            Token::Integer(n) => Ok(Ast::Literal(Literal::Integer(n), span)),
            Token::Number(n) => Ok(Ast::Literal(Literal::Number(n), span)),
            Token::Text(t) => Ok(Ast::Literal(Literal::Text(t), span)),
            Token::Quoted(name) => Ok(Ast::Field(name, span)),
            Token::Name(name) => {
                if self.symbol(&["("]).is_some() {
                    self.next();
                    let mut args = Vec::new();
                    if self.symbol(&[")"]).is_none() {
                        loop {
                            args.push(self.or()?);
                            match self.symbol(&[",", ")"]) {
                                Some(",") => {
                                    self.next();
                                }
                                Some(_) => break,
                                None => {
                                    return Err(Mistake::new(
                                        self.peek().1,
                                        format!("`,` or `)` was expected in {name}(…)"),
                                    ));
                                }
                            }
                        }
                    }
                    let (_, close) = self.next();
                    return Ok(Ast::Call(name.to_lowercase(), args, span.to(close)));
                }
                match name.to_lowercase().as_str() {
                    "true" => Ok(Ast::Literal(Literal::Boolean(true), span)),
                    "false" => Ok(Ast::Literal(Literal::Boolean(false), span)),
                    "null" => Ok(Ast::Literal(Literal::Null, span)),
                    "and" | "or" | "not" => Err(Mistake::new(
                        span,
                        format!("`{name}` needs a value before it"),
                    )),
                    _ => Ok(Ast::Field(name, span)),
                }
            }
            Token::Symbol("(") => {
                let inner = self.or()?;
                match self.next() {
                    (Token::Symbol(")"), close) => Ok(match inner {
                        Ast::Binary(op, l, r, _) => Ast::Binary(op, l, r, span.to(close)),
                        inner => inner,
                    }),
                    (_, at) => Err(Mistake::new(at, "`)` was expected here")),
                }
            }
            Token::End => Err(Mistake::new(span, "the expression ends too soon")),
            Token::Symbol(s) => Err(Mistake::new(
                span,
                format!("a value was expected before `{s}`"),
            )),
        }
    }
}

fn binary(op: BinaryOp, left: Ast, right: Ast) -> Ast {
    let span = left.span().to(right.span());
    Ast::Binary(op, Box::new(left), Box::new(right), span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(ast: &Ast) -> String {
        match ast {
            Ast::Literal(Literal::Integer(n), _) => n.to_string(),
            Ast::Literal(Literal::Number(n), _) => format!("{n:?}"),
            Ast::Literal(Literal::Text(t), _) => format!("{t:?}"),
            Ast::Literal(Literal::Boolean(b), _) => b.to_string(),
            Ast::Literal(Literal::Null, _) => "null".into(),
            Ast::Field(f, _) => format!("[{f}]"),
            Ast::Negate(a, _) => format!("(-{})", shape(a)),
            Ast::Not(a, _) => format!("(not {})", shape(a)),
            Ast::Binary(op, l, r, _) => format!("({} {} {})", shape(l), op.symbol(), shape(r)),
            Ast::Call(f, args, _) => format!(
                "{f}({})",
                args.iter().map(shape).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    fn mistake(text: &str) -> String {
        parse(text).unwrap_err().in_words(text)
    }

    #[test]
    fn precedence_and_names() {
        let cases = [
            ("1 + 2 * 3", "(1 + (2 * 3))"),
            ("(1 + 2) * 3", "((1 + 2) * 3)"),
            ("-Amount * 2", "((-[Amount]) * 2)"),
            (
                "a > 1 and b < 2 or not c",
                "((([a] > 1) and ([b] < 2)) or (not [c]))",
            ),
            ("`Close Date` = \"x\\\"y\"", "([Close Date] = \"x\\\"y\")"),
            (
                "IF(q > 10, \"bulk\", \"single\")",
                "if(([q] > 10), \"bulk\", \"single\")",
            ),
            ("1.5e3 + .5 - 7", "((1500.0 + 0.5) - 7)"),
            ("a <> b", "([a] != [b])"),
            (
                "FirstName & \" \" & LastName",
                "(([FirstName] & \" \") & [LastName])",
            ),
            ("now()", "now()"),
            ("Größe * 2", "([Größe] * 2)"),
        ];
        for (text, expected) in cases {
            assert_eq!(shape(&parse(text).unwrap()), expected, "{text}");
        }
    }

    #[test]
    fn half_typed_formulas_are_cut_into_pieces() {
        let text = "if(`Close Date` >= \"2026\", round(Amount*1.5, 2), null) & 'x\" open";
        let cut: Vec<(&str, Piece)> = pieces(text)
            .into_iter()
            .map(|(s, p)| (&text[s.start..s.end], p))
            .collect();
        use Piece::*;
        assert_eq!(
            cut,
            [
                ("if", Function),
                ("(", Symbol),
                ("`Close Date`", Field),
                (">=", Symbol),
                ("\"2026\"", Text),
                (",", Symbol),
                ("round", Function),
                ("(", Symbol),
                ("Amount", Field),
                ("*", Symbol),
                ("1.5", Number),
                (",", Symbol),
                ("2", Number),
                (")", Symbol),
                (",", Symbol),
                ("null", Word),
                (")", Symbol),
                ("&", Symbol),
                ("'", Mistake),
                ("x", Field),
                ("\" open", Mistake),
            ]
        );
        assert_eq!(pieces("  "), []);
        assert_eq!(
            pieces("NOT a"),
            [
                (Span { start: 0, end: 3 }, Word),
                (Span { start: 4, end: 5 }, Field)
            ]
        );
    }

    #[test]
    fn mistakes_are_said_at_their_place() {
        assert_eq!(
            mistake("1 +"),
            "line 1, column 4: the expression ends too soon"
        );
        assert_eq!(
            mistake("round(a, 2"),
            "line 1, column 11: `,` or `)` was expected in round(…)"
        );
        assert_eq!(
            mistake("a = 'x'"),
            "line 1, column 5: `'` means nothing here: text goes in double quotes, a field name with spaces in backquotes"
        );
        assert_eq!(
            mistake("1 < a < 3"),
            "line 1, column 7: comparisons do not chain: join them with `and` instead of a second `<`"
        );
        assert_eq!(
            mistake("\"open"),
            "line 1, column 1: this text has no closing \""
        );
        assert_eq!(
            mistake("a +\n  * b"),
            "line 2, column 3: a value was expected before `*`"
        );
        assert_eq!(
            mistake("a b"),
            "line 1, column 1: a field name with spaces goes in backquotes: `a b`"
        );
        assert!(mistake("").contains("write an expression"));
    }
}
