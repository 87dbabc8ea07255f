//! The function's parameter types, checked: the context by value, the
//! argument owned (it is deserialized from the stored payload), and the
//! owned type to suggest when it is not.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{GenericArgument, Ident, PathArguments, Type};

/// The context parameter: `JobContext`, by value.
pub(crate) fn check_ctx(ty: &Type) -> Result<(), String> {
    if borrows(ty) {
        let owned = owned(ty).map_or_else(|| "JobContext".to_string(), |t| type_string(&t));
        return Err(format!(
            "the job's context is handed to the function by value: take `{owned}` instead of `{}`",
            type_string(ty)
        ));
    }
    let is_ctx = matches!(ty, Type::Path(tp)
        if tp.qself.is_none()
            && tp.path.segments.last().is_some_and(|s| s.ident == "JobContext"));
    if is_ctx {
        Ok(())
    } else {
        Err("the first of two arguments must be `JobContext`".into())
    }
}

/// The argument: owned (it is deserialized from the payload) and named.
pub(crate) fn check_arg(ty: &Type) -> Result<(), String> {
    let mut found = Found::default();
    found.visit_type(ty);
    if found.impl_trait {
        return Err(format!(
            "the job's argument cannot be `impl Trait` (`{}`): name the type",
            type_string(ty)
        ));
    }
    if !found.borrow {
        return Ok(());
    }
    let written = type_string(ty);
    Err(match owned(ty) {
        Some(o) => format!(
            "the job's argument is deserialized from the stored payload and must be an \
             owned type: take `{}` instead of `{written}`",
            type_string(&o)
        ),
        None => format!(
            "the job's argument is deserialized from the stored payload and must be an \
             owned type, which `{written}` is not"
        ),
    })
}

/// References and lifetimes (but `'static`, which borrows nothing) and
/// `impl Trait` anywhere in a type.
#[derive(Default)]
struct Found {
    borrow: bool,
    impl_trait: bool,
}

impl<'ast> Visit<'ast> for Found {
    fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
        self.borrow = true;
        syn::visit::visit_type_reference(self, r);
    }
    fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
        if l.ident != "static" {
            self.borrow = true;
        }
    }
    fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
        self.impl_trait = true;
        syn::visit::visit_type_impl_trait(self, t);
    }
}

fn borrows(ty: &Type) -> bool {
    let mut found = Found::default();
    found.visit_type(ty);
    found.borrow
}

/// The owned type to suggest for a borrowed one: `&str` -> `String`,
/// `&[T]` -> `Vec<T>`, `&Path` -> `PathBuf`, `Cow<'a, str>` -> `String`,
/// `&T` -> `T`, inside any type (`Vec<&str>` -> `Vec<String>`). `None`
/// when a borrow remains (a type with a lifetime parameter of its own).
pub(crate) fn owned(ty: &Type) -> Option<Type> {
    let mut ty = ty.clone();
    let mut o = Owned { unowned: false };
    o.visit_type_mut(&mut ty);
    (!o.unowned && !borrows(&ty)).then_some(ty)
}

/// Replaces borrows by owned types; `unowned`: a borrow of a trait object
/// (or `impl Trait`), which has no owned form to suggest.
struct Owned {
    unowned: bool,
}

impl VisitMut for Owned {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        // Inner types first: `&[&str]` becomes `Vec<String>`.
        syn::visit_mut::visit_type_mut(self, ty);
        let elem = match ty {
            Type::Reference(r) => &*r.elem,
            Type::Path(tp) if tp.qself.is_none() => match cow_inner(&tp.path) {
                Some(t) => t,
                None => return,
            },
            _ => return,
        };
        match owned_of(elem) {
            Some(o) => *ty = o,
            None => self.unowned = true,
        }
    }
}

/// What owns the data of a borrowed `T`: `String` for `str`, `Vec<T>` for
/// `[T]`, `PathBuf` for `Path`, ..., else `T` itself.
fn owned_of(elem: &Type) -> Option<Type> {
    Some(match elem {
        Type::Slice(s) => {
            let e = &s.elem;
            syn::parse_quote!(Vec<#e>)
        }
        Type::Paren(p) => return owned_of(&p.elem),
        Type::TraitObject(_) | Type::ImplTrait(_) => return None,
        Type::Path(tp) if tp.qself.is_none() => {
            let last = tp.path.segments.last().map(|s| s.ident.to_string());
            let to = match last.as_deref() {
                Some("str") if tp.path.segments.len() == 1 => {
                    return Some(syn::parse_quote!(String))
                }
                Some("Path") => "PathBuf",
                Some("OsStr") => "OsString",
                Some("CStr") => "CString",
                _ => return Some(elem.clone()),
            };
            let mut tp = tp.clone();
            if let Some(seg) = tp.path.segments.last_mut() {
                seg.ident = Ident::new(to, seg.ident.span());
            }
            Type::Path(tp)
        }
        _ => elem.clone(),
    })
}

/// `T` of `Cow<'a, T>` (any path ending in `Cow`).
fn cow_inner(path: &syn::Path) -> Option<&Type> {
    let seg = path.segments.last().filter(|s| s.ident == "Cow")?;
    let PathArguments::AngleBracketed(args) = &seg.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// A type as a user writes it: `&'a [u8]`, `Vec<String>`, `(u32, u32)`
/// (the tokens' own `Display` spaces every token apart).
pub(crate) fn type_string(ty: &Type) -> String {
    let mut out = String::new();
    write_tokens(ty.to_token_stream(), &mut out);
    out.trim().to_string()
}

/// What came before a token, to know whether a space goes between.
#[derive(Clone, Copy, PartialEq)]
enum Prev {
    Start,
    Word,
    /// `mut`, `dyn`, `as`, ...: a space after, whatever follows.
    Keyword,
    /// The name of a lifetime: a space after but before `,` `>` `+`.
    Lifetime,
    Punct,
}

const KEYWORDS: &[&str] = &["as", "mut", "dyn", "impl", "const", "unsafe"];

fn write_tokens(tokens: TokenStream, out: &mut String) {
    let mut prev = Prev::Start;
    let mut after_quote = false;
    let mut arrow = false;
    for tt in tokens {
        let closing =
            matches!(&tt, TokenTree::Punct(p) if matches!(p.as_char(), ',' | '>' | '+' | ';'));
        let space = match (&tt, prev) {
            (_, Prev::Keyword) => !closing,
            (_, Prev::Lifetime) => !closing,
            (TokenTree::Ident(i), _) if i == "as" => prev != Prev::Start,
            (TokenTree::Ident(_) | TokenTree::Literal(_), Prev::Word) => true,
            _ => false,
        };
        if space {
            out.push(' ');
        }
        match &tt {
            TokenTree::Ident(i) => {
                out.push_str(&i.to_string());
                prev = if after_quote {
                    Prev::Lifetime
                } else if KEYWORDS.iter().any(|k| i == k) {
                    Prev::Keyword
                } else {
                    Prev::Word
                };
            }
            TokenTree::Literal(l) => {
                out.push_str(&l.to_string());
                prev = Prev::Word;
            }
            TokenTree::Punct(p) => {
                let c = p.as_char();
                match c {
                    ',' | ';' => {
                        out.push(c);
                        out.push(' ');
                    }
                    '+' | '=' => {
                        out.push(' ');
                        out.push(c);
                        out.push(' ');
                    }
                    '-' if p.spacing() == Spacing::Joint => out.push_str(" -"),
                    '>' if arrow => out.push_str("> "),
                    _ => out.push(c),
                }
                arrow = c == '-' && p.spacing() == Spacing::Joint;
                prev = Prev::Punct;
            }
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                let mut inner = String::new();
                write_tokens(g.stream(), &mut inner);
                out.push_str(inner.trim_end());
                out.push_str(close);
                prev = if g.delimiter() == Delimiter::None {
                    Prev::Word
                } else {
                    Prev::Punct
                };
            }
        }
        after_quote = matches!(&tt, TokenTree::Punct(p) if p.as_char() == '\'');
    }
}
