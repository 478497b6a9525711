//! The functions of a Rust file and their bodies, found with `syn`, and the stubs that replace
//! the bodies.
//!
//! Parsing the file (rather than scanning it for `fn` and braces) means strings, comments,
//! lifetimes and raw identifiers cannot confuse the search.
//!
//! # Resources
//! - [`syn::visit`](https://docs.rs/syn/2/syn/visit/index.html): walking every item of a file.
//! - [`proc_macro2::Span::byte_range`](https://docs.rs/proc-macro2/1/proc_macro2/struct.Span.html#method.byte_range):
//!   where a token is in the text (the `span-locations` feature).

use std::fmt::Write as _;
use std::ops::Range;
use syn::visit::{self, Visit};

/// A function with a body: a free function, or a method of an impl or (with a default body) of
/// a trait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// The line of its `fn` keyword (1-based).
    pub fn_line: usize,
    /// The line of its body's closing brace (1-based).
    pub end_line: usize,
    /// The bytes of its body, from `{` to `}`, in the text.
    pub body: Range<usize>,
}

/// Every function with a body in `text`, nested ones included, in the order they start.
/// Functions written inside a macro call (`macro_rules!`, say) are tokens to `syn`, not items,
/// and are not found.
///
/// # Errors
/// The first syntax error of `text`.
pub fn functions(text: &str) -> syn::Result<Vec<Function>> {
    // `parse_str` rather than `syn::parse_file`: the latter cuts a byte-order mark or a shebang
    // line off the text first, which would shift every byte offset.
    let file: syn::File = syn::parse_str(text)?;
    let mut finder = FunctionFinder::default();
    finder.visit_file(&file);
    finder.found.sort_by_key(|f| f.body.start);
    Ok(finder.found)
}

#[derive(Default)]
struct FunctionFinder {
    found: Vec<Function>,
}

impl FunctionFinder {
    fn add(&mut self, signature: &syn::Signature, body: &syn::Block) {
        self.found.push(Function {
            name: signature.ident.to_string(),
            fn_line: signature.fn_token.span.start().line,
            end_line: body.brace_token.span.close().start().line,
            body: body.brace_token.span.join().byte_range(),
        });
    }
}

impl<'ast> Visit<'ast> for FunctionFinder {
    fn visit_item_fn(&mut self, function: &'ast syn::ItemFn) {
        self.add(&function.sig, &function.block);
        visit::visit_item_fn(self, function);
    }

    fn visit_impl_item_fn(&mut self, function: &'ast syn::ImplItemFn) {
        self.add(&function.sig, &function.block);
        visit::visit_impl_item_fn(self, function);
    }

    fn visit_trait_item_fn(&mut self, function: &'ast syn::TraitItemFn) {
        if let Some(body) = &function.default {
            self.add(&function.sig, body);
        }
        visit::visit_trait_item_fn(self, function);
    }
}

/// `text` with the body of each function of `stubs` replaced by `todo!(MESSAGE)`, on a line of
/// its own indented one level deeper than the `fn` line; every other byte stays. The functions
/// must be from [`functions`] of this `text`, in order, none inside another.
pub fn stub_bodies(text: &str, stubs: &[(&Function, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0; // bytes of `text` already handled
    for (function, message) in stubs {
        let indent = indent_of_line(text, function.fn_line);
        out += &text[copied..function.body.start];
        let _ = write!(out, "{{\n{indent}    todo!(\"{}\")\n{indent}}}", escape_format(message));
        copied = function.body.end;
    }
    out += &text[copied..];
    out
}

/// The spaces and tabs that start line `line` (1-based) of `text`.
fn indent_of_line(text: &str, line: usize) -> &str {
    let line = text.lines().nth(line - 1).unwrap_or("");
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

/// Makes `text` safe inside the format string of `todo!("...")`.
pub fn escape_format(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('{', "{{").replace('}', "}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub_all(text: &str) -> (String, Vec<String>) {
        let found = functions(text).unwrap();
        let stubs: Vec<(&Function, String)> = found.iter().map(|f| (f, format!("do {}", f.name))).collect();
        (stub_bodies(text, &stubs), found.iter().map(|f| f.name.clone()).collect())
    }

    #[test]
    fn lifetimes_chars_and_raw_identifiers_do_not_confuse_the_search() {
        let source = "fn f<'a>(x: &'a u8, r#type: u8) -> char { let q = '\\''; let b = b'{'; '{' }\nfn g() {}";
        let (out, names) = stub_all(source);
        assert_eq!(names, vec!["f", "g"]);
        assert_eq!(
            out,
            "fn f<'a>(x: &'a u8, r#type: u8) -> char {\n    todo!(\"do f\")\n}\nfn g() {\n    todo!(\"do g\")\n}"
        );
    }

    #[test]
    fn functions_are_found_with_their_lines_and_bodies() {
        let source = "\
trait T {
    fn declared(&self);
    /// Doc.
    fn provided(&self) -> u8 {
        fn helper() {}
        1
    }
}
impl T for () { fn declared(&self) { let s = \"fn x() {\"; } }
";
        let found = functions(source).unwrap();
        let summary: Vec<(&str, usize, usize, &str)> =
            found.iter().map(|f| (f.name.as_str(), f.fn_line, f.end_line, &source[f.body.clone()])).collect();
        assert_eq!(
            summary,
            [
                ("provided", 4, 7, "{\n        fn helper() {}\n        1\n    }"),
                ("helper", 5, 5, "{}"),
                ("declared", 9, 9, "{ let s = \"fn x() {\"; }"),
            ]
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let err = functions("fn a() {}\nfn b( {}\n").unwrap_err();
        assert_eq!(err.span().start().line, 2, "{err}");
    }

    #[test]
    fn braces_quotes_and_backslashes_in_messages_are_escaped_for_the_format_string() {
        assert_eq!(escape_format("a {b} \"c\" \\"), "a {{b}} \\\"c\\\" \\\\");
    }
}
