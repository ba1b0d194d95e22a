//! The `logos` lexer for the textual IR (grammar in `ir-spec/grammar.md`).

use logos::Logos;

/// A token of the textual IR. Whitespace and `//` comments are skipped.
#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
pub enum Token {
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("<")]
    LAngle,
    #[token(">")]
    RAngle,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token("=")]
    Equals,
    #[token("->")]
    Arrow,
    /// `@name`: a module-level symbol (weight or function).
    #[regex(r"@[A-Za-z0-9_.\-]+")]
    Global,
    /// `%name`: an SSA value.
    #[regex(r"%[A-Za-z0-9_.]+")]
    Local,
    /// Keywords, op names, dtypes, attribute keys, `true`/`false`, `inf`/`nan`.
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident,
    #[regex(r"-?[0-9]+", priority = 3)]
    Int,
    #[regex(r"-?[0-9]+\.[0-9]+([eE][+-]?[0-9]+)?")]
    #[regex(r"-?[0-9]+[eE][+-]?[0-9]+")]
    #[token("-inf")]
    Float,
    #[regex(r#""([^"\\\n]|\\["\\nt])*""#)]
    Str,
}

impl Token {
    /// How the token is described in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Token::LParen => "`(`",
            Token::RParen => "`)`",
            Token::LBrace => "`{`",
            Token::RBrace => "`}`",
            Token::LBracket => "`[`",
            Token::RBracket => "`]`",
            Token::LAngle => "`<`",
            Token::RAngle => "`>`",
            Token::Comma => "`,`",
            Token::Colon => "`:`",
            Token::Equals => "`=`",
            Token::Arrow => "`->`",
            Token::Global => "a @symbol",
            Token::Local => "a %value",
            Token::Ident => "an identifier",
            Token::Int => "an integer",
            Token::Float => "a float",
            Token::Str => "a string",
        }
    }
}

/// One lexed token with its byte span.
#[derive(Clone, Copy, Debug)]
pub struct Spanned {
    pub token: Token,
    pub start: usize,
    pub end: usize,
}

/// Lexes the whole input. On an unrecognised character returns its byte offset.
pub fn lex(src: &str) -> Result<Vec<Spanned>, usize> {
    let mut lexer = Token::lexer(src);
    let mut out = Vec::new();
    while let Some(tok) = lexer.next() {
        let span = lexer.span();
        match tok {
            Ok(token) => out.push(Spanned { token, start: span.start, end: span.end }),
            Err(()) => return Err(span.start),
        }
    }
    Ok(out)
}

/// Decodes the escapes of a string literal (including its quotes).
pub fn unquote(lit: &str) -> String {
    let inner = &lit[1..lit.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}
