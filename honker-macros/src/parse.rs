//! `#[job(..)]` and its function, parsed and checked once into a [`JobDef`].
//!
//! Every error a user can get from the attribute comes from here, at the
//! span of what is wrong; as many as can be found at once are reported
//! together. `expand` only writes code from a `JobDef`.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, Block, Expr, FnArg, GenericArgument, Ident, ItemFn, Lit, LitInt, LitStr, Pat,
    PathArguments, ReturnType, Type, UnOp, Visibility,
};

/// A `#[job]` function, checked: everything `expand` needs, and nothing it
/// has to validate.
pub(crate) struct JobDef {
    /// The function's visibility, given to the generated type and functions.
    pub vis: Visibility,
    /// The function's identifier as written (a raw `r#name` stays raw).
    pub ident: Ident,
    /// The job's name: the function's name, without `r#`.
    pub name: String,
    /// The queue: the attribute's `queue`, or the job's name.
    pub queue: String,
    /// The `JobContext` parameter, when the function takes one.
    pub ctx: Option<Param>,
    /// The argument: the job's payload, decoded.
    pub arg: Param,
    /// The return type as written (a `Result`, or an alias of one).
    pub ret: Type,
    /// The success type of `ret`: the job's output.
    pub output: Type,
    /// The attribute's options, as values.
    pub options: Options,
    /// `///` comments of the function: they document the generated type.
    pub docs: Vec<Attribute>,
    /// The function's other attributes: they stay on the function.
    pub attrs: Vec<Attribute>,
    /// The function's body.
    pub body: Box<Block>,
}

/// One parameter of the function: its pattern and its type, as written.
pub(crate) struct Param {
    pub pat: Box<Pat>,
    pub ty: Box<Type>,
}

/// The job's default options. `None`: the default of `JobOptions`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Options {
    pub max_attempts: Option<u32>,
    pub priority: Option<i64>,
    /// An in-process timer: millisecond precision.
    pub timeout_ms: Option<u64>,
    /// Due times on disk: whole seconds.
    pub backoff: Option<Backoff>,
    /// Due times on disk: whole seconds.
    pub expires_secs: Option<u64>,
}

/// A retry delay in whole seconds.
#[derive(Debug, PartialEq)]
pub(crate) enum Backoff {
    Fixed { secs: u64 },
    Exponential { base_secs: u64, max_secs: u64 },
}

const OPTIONS: &[&str] = &[
    "queue",
    "max_attempts",
    "priority",
    "timeout",
    "backoff",
    "expires",
];

impl JobDef {
    /// Parse and check the attribute's arguments and the function.
    pub(crate) fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<JobDef> {
        let mut errors = Errors::default();
        let (queue, options) = parse_attr(attr, &mut errors);
        let func: ItemFn = match syn::parse2(item) {
            Ok(f) => f,
            Err(e) => {
                errors.push(e);
                return Err(errors.finish().unwrap_err());
            }
        };
        let def = parse_fn(func, queue, options, &mut errors);
        errors.finish()?;
        Ok(def.expect("a function without errors is complete"))
    }
}

/// Errors found so far, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

fn parse_attr(attr: TokenStream, errors: &mut Errors) -> (Option<String>, Options) {
    let mut queue = None;
    let mut options = Options::default();
    let mut seen: Vec<String> = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.to_token_stream().to_string().replace(' ', "");
        if !OPTIONS.contains(&key.as_str()) {
            return Err(meta.error(format!(
                "unknown #[job] option `{key}`; expected one of: {}",
                OPTIONS.join(", ")
            )));
        }
        if seen.contains(&key) {
            errors.push(meta.error(format!("#[job] option `{key}` is given twice")));
        }
        seen.push(key.clone());
        let value = meta.value()?;
        match key.as_str() {
            "queue" => {
                let s: LitStr = value.parse()?;
                match queue_name_error(&s.value()) {
                    Some(reason) => errors.push(syn::Error::new(
                        s.span(),
                        format!("invalid queue name {:?}: {reason}", s.value()),
                    )),
                    None => queue = Some(s.value()),
                }
            }
            "max_attempts" => {
                let n: LitInt = value.parse()?;
                match n.base10_parse::<u32>() {
                    Ok(0) => {
                        errors.push(syn::Error::new(n.span(), "max_attempts must be at least 1"))
                    }
                    Ok(v) => options.max_attempts = Some(v),
                    Err(e) => errors.push(e),
                }
            }
            "priority" => {
                let e: Expr = value.parse()?;
                match priority(&e) {
                    Ok(p) => options.priority = Some(p),
                    Err(msg) => errors.push(syn::Error::new_spanned(&e, msg)),
                }
            }
            "timeout" | "backoff" | "expires" => {
                let s: LitStr = value.parse()?;
                let v = s.value();
                let checked = match key.as_str() {
                    "timeout" => timeout(&v).map(|ms| options.timeout_ms = Some(ms)),
                    "backoff" => backoff(&v).map(|b| options.backoff = Some(b)),
                    _ => expires(&v).map(|secs| options.expires_secs = Some(secs)),
                };
                if let Err(msg) = checked {
                    errors.push(syn::Error::new(s.span(), msg));
                }
            }
            _ => unreachable!("every key of OPTIONS is handled"),
        }
        Ok(())
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, attr) {
        errors.push(e);
    }
    (queue, options)
}

fn parse_fn(
    func: ItemFn,
    queue: Option<String>,
    options: Options,
    errors: &mut Errors,
) -> Option<JobDef> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            "#[job] needs an `async fn`",
        ));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(syn::Error::new(
            u.span,
            "a #[job] function cannot be `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a #[job] function cannot have an `extern` ABI",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a #[job] function cannot be generic",
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            v,
            "a #[job] function cannot be variadic",
        ));
    }

    let name = sig.ident.unraw().to_string();
    let queue = match queue {
        Some(q) => Some(q),
        None => match queue_name_error(&name) {
            None => Some(name.clone()),
            Some(reason) => {
                errors.push(syn::Error::new(
                    sig.ident.span(),
                    format!(
                        "the queue defaults to the function's name, and {name:?} is not a \
                         valid queue name ({reason}): set one with `#[job(queue = \"...\")]`"
                    ),
                ));
                None
            }
        },
    };

    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Typed(p) => params.push(Param {
                pat: p.pat.clone(),
                ty: p.ty.clone(),
            }),
            FnArg::Receiver(r) => errors.push(syn::Error::new_spanned(
                r,
                "a #[job] function cannot take `self`",
            )),
        }
    }
    let (ctx, arg) = match (params.len(), sig.inputs.len()) {
        (1, 1) => (None, params.pop()),
        (2, 2) => {
            let arg = params.pop();
            (params.pop(), arg)
        }
        (_, 1 | 2) => (None, None), // a `self`, reported above
        _ => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                "a #[job] function takes `(args: T)` or `(ctx: JobContext, args: T)`",
            ));
            (None, None)
        }
    };
    if let Some(ctx) = &ctx {
        if let Err(msg) = check_ctx(&ctx.ty) {
            errors.push(syn::Error::new_spanned(&ctx.ty, msg));
        }
    }
    if let Some(arg) = &arg {
        if let Err(msg) = check_arg(&arg.ty) {
            errors.push(syn::Error::new_spanned(&arg.ty, msg));
        }
    }

    let ret = match &sig.output {
        ReturnType::Type(_, ty) => Some((**ty).clone()),
        ReturnType::Default => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                "a #[job] function must return `Result<O, E>` (for example `Result<(), JobError>`)",
            ));
            None
        }
    };

    let (docs, attrs): (Vec<Attribute>, Vec<Attribute>) =
        attrs.into_iter().partition(|a| a.path().is_ident("doc"));
    let (queue, arg, ret) = (queue?, arg?, ret?);
    // Spanned at the return type: "must return `Result`" points there.
    let output: Type = syn::parse_quote_spanned! {syn::spanned::Spanned::span(&ret)=>
        <#ret as ::honker_actors::__private::JobResult>::Ok
    };
    Some(JobDef {
        vis,
        ident: sig.ident,
        name,
        queue,
        ctx,
        arg,
        ret,
        output,
        options,
        docs,
        attrs,
        body: block,
    })
}

/// The rule `honker_core::validate_queue_name` enforces at run time, with
/// the same reasons (this crate cannot depend on `honker-core`): keep the
/// two in step. `None`: a valid name.
pub(crate) fn queue_name_error(name: &str) -> Option<&'static str> {
    const MAX_QUEUE_NAME: usize = 128; // honker_core's MAX_QUEUE_NAME
    if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > MAX_QUEUE_NAME {
        Some("must be at most 128 bytes")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b))
    {
        Some("may hold only ASCII letters, digits and _ - . : /")
    } else {
        None
    }
}

/// An integer literal, possibly negative, that fits an `i64`.
fn priority(e: &Expr) -> Result<i64, String> {
    let (negative, lit) = match e {
        Expr::Lit(l) => (false, &l.lit),
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => match &*u.expr {
            Expr::Lit(l) => (true, &l.lit),
            _ => return Err(PRIORITY.into()),
        },
        _ => return Err(PRIORITY.into()),
    };
    let Lit::Int(n) = lit else {
        return Err(PRIORITY.into());
    };
    let n: i128 = n.base10_parse().map_err(|e| e.to_string())?;
    i64::try_from(if negative { -n } else { n })
        .map_err(|_| format!("priority {n} does not fit in an i64"))
}

const PRIORITY: &str = "priority must be an integer literal, for example `priority = 10` \
                        (higher runs first; negative is allowed)";

/// Why a duration string was refused.
#[derive(Debug, PartialEq)]
pub(crate) enum DurationError {
    /// Not a whole number and a unit.
    Invalid,
    /// More milliseconds than a `u64` holds.
    TooLarge,
}

/// `"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"2d"` (a space before the unit is
/// allowed) in milliseconds.
pub(crate) fn parse_millis(s: &str) -> Result<u64, DurationError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(DurationError::Invalid)?;
    let (num, unit) = s.split_at(split);
    let scale: u64 = match unit.trim_start() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(DurationError::Invalid),
    };
    if num.is_empty() {
        return Err(DurationError::Invalid);
    }
    // Only digits: the one possible error is a number beyond u64.
    let n: u64 = num.parse().map_err(|_| DurationError::TooLarge)?;
    n.checked_mul(scale).ok_or(DurationError::TooLarge)
}

fn duration_message(s: &str, e: DurationError, example: &str) -> String {
    match e {
        DurationError::Invalid => format!(
            "invalid duration {s:?}: write a whole number and a unit, \
             one of ms, s, m, h, d (for example {example})"
        ),
        DurationError::TooLarge => format!("duration {s:?} is too large"),
    }
}

/// Whole seconds, or the whole seconds to use instead (rounded up).
fn whole_secs(ms: u64) -> Result<u64, u64> {
    if ms % 1000 == 0 {
        Ok(ms / 1000)
    } else {
        Err(ms.div_ceil(1000))
    }
}

const WHOLE_SECONDS: &str = "the honker format stores due times in whole seconds";

/// `timeout`: an in-process timer, so any number of milliseconds above 0.
pub(crate) fn timeout(s: &str) -> Result<u64, String> {
    match parse_millis(s) {
        Ok(0) => Err(format!(
            "timeout {s:?} would stop every run at once: use at least \"1ms\", \
             or leave `timeout` out for no limit"
        )),
        Ok(ms) => Ok(ms),
        Err(e) => Err(duration_message(s, e, "\"30s\" or \"250ms\"")),
    }
}

/// `expires`: a due time on disk, so whole seconds, at least one.
pub(crate) fn expires(s: &str) -> Result<u64, String> {
    let ms = parse_millis(s).map_err(|e| duration_message(s, e, "\"1h\" or \"7d\""))?;
    match whole_secs(ms) {
        Ok(0) => Err(format!(
            "expires {s:?} would expire every job before it runs: use at least \"1s\""
        )),
        Ok(secs) => Ok(secs),
        Err(up) => Err(format!(
            "expires {s:?} is not a whole number of seconds: {WHOLE_SECONDS}, so use \"{up}s\""
        )),
    }
}

/// `backoff`: `"5s"` (fixed, `"0s"` allowed) or `"exponential(2s, 1h)"`;
/// retry due times are on disk, so whole seconds.
pub(crate) fn backoff(s: &str) -> Result<Backoff, String> {
    let invalid = || {
        format!("invalid backoff {s:?}: write a fixed delay like \"5s\" or \"exponential(2s, 1h)\"")
    };
    let millis = |part: &str| {
        parse_millis(part).map_err(|e| match e {
            DurationError::Invalid => invalid(),
            DurationError::TooLarge => format!("invalid backoff {s:?}: {part:?} is too large"),
        })
    };
    let t = s.trim();
    let Some(args) = t
        .strip_prefix("exponential")
        .map(str::trim_start)
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.strip_suffix(')'))
    else {
        return match whole_secs(millis(t)?) {
            Ok(secs) => Ok(Backoff::Fixed { secs }),
            Err(up) => Err(format!(
                "backoff {s:?} is not a whole number of seconds: {WHOLE_SECONDS}, so use \"{up}s\""
            )),
        };
    };
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    let [base, max] = parts[..] else {
        return Err(invalid());
    };
    let (base_ms, max_ms) = (millis(base)?, millis(max)?);
    match (whole_secs(base_ms), whole_secs(max_ms)) {
        (Ok(0), _) => Err(format!(
            "invalid backoff {s:?}: the base delay must be at least \"1s\" \
             (a fixed \"0s\" retries at once)"
        )),
        (Ok(base_secs), Ok(max_secs)) if max_secs < base_secs => Err(format!(
            "invalid backoff {s:?}: the cap ({max}) must not be less than the base ({base})"
        )),
        (Ok(base_secs), Ok(max_secs)) => Ok(Backoff::Exponential {
            base_secs,
            max_secs,
        }),
        (b, m) => {
            let fix = |r: Result<u64, u64>, part: &str| match r {
                Ok(_) => part.to_string(),
                Err(up) => format!("{up}s"),
            };
            Err(format!(
                "backoff {s:?} is not in whole seconds: {WHOLE_SECONDS}, so use \
                 \"exponential({}, {})\"",
                fix(b, base),
                fix(m, max)
            ))
        }
    }
}

/// The context parameter: `JobContext`, by value.
fn check_ctx(ty: &Type) -> Result<(), String> {
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
fn check_arg(ty: &Type) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn def(attr: TokenStream, item: TokenStream) -> syn::Result<JobDef> {
        JobDef::parse(attr, item)
    }

    /// Every message of a failed parse, in order.
    fn errors(attr: TokenStream, item: TokenStream) -> Vec<String> {
        match def(attr, item) {
            Ok(_) => panic!("parsed without an error"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn ok_fn() -> TokenStream {
        quote::quote! {
            async fn f(n: u32) -> Result<(), JobError> { Ok(()) }
        }
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_millis("250ms"), Ok(250));
        assert_eq!(parse_millis("30s"), Ok(30_000));
        assert_eq!(parse_millis("5m"), Ok(300_000));
        assert_eq!(parse_millis("1h"), Ok(3_600_000));
        assert_eq!(parse_millis("2d"), Ok(172_800_000));
        assert_eq!(parse_millis("0s"), Ok(0));
        assert_eq!(parse_millis(" 30 s "), Ok(30_000), "spaces around");
        assert_eq!(parse_millis("007s"), Ok(7_000));
    }

    #[test]
    fn durations_that_overflow_are_too_large() {
        let max = u64::MAX;
        assert_eq!(parse_millis(&format!("{max}ms")), Ok(max));
        assert_eq!(
            parse_millis(&format!("{max}s")),
            Err(DurationError::TooLarge)
        );
        assert_eq!(
            parse_millis("99999999999999999999999ms"),
            Err(DurationError::TooLarge),
            "beyond u64 before the unit"
        );
        assert_eq!(
            parse_millis(&format!("{}d", max / 86_400_000 + 1)),
            Err(DurationError::TooLarge)
        );
        assert!(timeout(&format!("{max}s"))
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn garbage_durations_are_invalid() {
        for bad in [
            "",
            "s",
            "30",
            "30 parsecs",
            "1.5s",
            "-1s",
            "+1s",
            "1 h 2",
            "30S",
            "ms30",
            "1e3ms",
            "٣s",
            "1s1s",
            "30 ms ms",
        ] {
            assert_eq!(parse_millis(bad), Err(DurationError::Invalid), "{bad:?}");
        }
        assert_eq!(
            timeout("30 parsecs").unwrap_err(),
            "invalid duration \"30 parsecs\": write a whole number and a unit, \
             one of ms, s, m, h, d (for example \"30s\" or \"250ms\")"
        );
    }

    #[test]
    fn timeout_keeps_milliseconds_and_refuses_zero() {
        assert_eq!(timeout("250ms"), Ok(250));
        assert_eq!(timeout("1500ms"), Ok(1500));
        assert_eq!(timeout("2m"), Ok(120_000));
        assert!(timeout("0s")
            .unwrap_err()
            .contains("would stop every run at once"));
    }

    #[test]
    fn expires_is_whole_seconds_rounded_up_in_the_suggestion() {
        assert_eq!(expires("1h"), Ok(3600));
        assert_eq!(expires("2000ms"), Ok(2));
        assert_eq!(
            expires("1500ms").unwrap_err(),
            "expires \"1500ms\" is not a whole number of seconds: the honker format \
             stores due times in whole seconds, so use \"2s\""
        );
        assert!(expires("1ms").unwrap_err().ends_with("use \"1s\""));
        assert!(expires("0s").unwrap_err().contains("at least \"1s\""));
        assert!(expires("soon")
            .unwrap_err()
            .starts_with("invalid duration \"soon\""));
    }

    #[test]
    fn backoff_fixed_and_exponential() {
        assert_eq!(backoff("5s"), Ok(Backoff::Fixed { secs: 5 }));
        assert_eq!(
            backoff("0s"),
            Ok(Backoff::Fixed { secs: 0 }),
            "0 is allowed"
        );
        assert_eq!(backoff("0ms"), Ok(Backoff::Fixed { secs: 0 }));
        assert_eq!(backoff("3000ms"), Ok(Backoff::Fixed { secs: 3 }));
        assert_eq!(
            backoff("exponential(2s, 1h)"),
            Ok(Backoff::Exponential {
                base_secs: 2,
                max_secs: 3600
            })
        );
        assert_eq!(
            backoff(" exponential ( 1s,1s ) "),
            Ok(Backoff::Exponential {
                base_secs: 1,
                max_secs: 1
            })
        );
    }

    #[test]
    fn backoff_below_or_between_seconds_names_the_value_to_use() {
        assert_eq!(
            backoff("250ms").unwrap_err(),
            "backoff \"250ms\" is not a whole number of seconds: the honker format \
             stores due times in whole seconds, so use \"1s\""
        );
        assert!(backoff("1500ms").unwrap_err().ends_with("use \"2s\""));
        assert_eq!(
            backoff("exponential(500ms, 1h)").unwrap_err(),
            "backoff \"exponential(500ms, 1h)\" is not in whole seconds: the honker format \
             stores due times in whole seconds, so use \"exponential(1s, 1h)\""
        );
        assert!(backoff("exponential(2s, 90500ms)")
            .unwrap_err()
            .ends_with("use \"exponential(2s, 91s)\""));
        assert!(backoff("exponential(1ms, 1ms)")
            .unwrap_err()
            .ends_with("use \"exponential(1s, 1s)\""));
    }

    #[test]
    fn backoff_garbage_zero_base_and_inverted_cap_are_refused() {
        let garbage = |s: &str| {
            format!(
                "invalid backoff {s:?}: write a fixed delay like \"5s\" or \"exponential(2s, 1h)\""
            )
        };
        for bad in [
            "",
            "fast",
            "exponential(2s)",
            "exponential(2s, 1h, 3h)",
            "exponential(2s, 1h",
            "exponential 2s, 1h",
            "linear(2s, 1h)",
            "exponential(2 parsecs, 1h)",
        ] {
            assert_eq!(backoff(bad).unwrap_err(), garbage(bad));
        }
        assert!(backoff("exponential(0s, 1h)")
            .unwrap_err()
            .contains("the base delay must be at least \"1s\""));
        assert_eq!(
            backoff("exponential(1h, 2s)").unwrap_err(),
            "invalid backoff \"exponential(1h, 2s)\": the cap (2s) must not be less than the base (1h)"
        );
        assert!(backoff(&format!("{}d", u64::MAX))
            .unwrap_err()
            .contains("is too large"));
    }

    #[test]
    fn queue_names_follow_the_runtime_rule() {
        for good in [
            "emails",
            "billing.v2:invoices/eu-west_1",
            "a",
            &"x".repeat(128),
        ] {
            assert_eq!(queue_name_error(good), None, "{good:?}");
        }
        assert_eq!(queue_name_error(""), Some("must not be empty"));
        assert_eq!(
            queue_name_error(&"x".repeat(129)),
            Some("must be at most 128 bytes")
        );
        for bad in ["a b", "a\\b", "é", "emails!", "a#b"] {
            assert_eq!(
                queue_name_error(bad),
                Some("may hold only ASCII letters, digits and _ - . : /"),
                "{bad:?}"
            );
        }
        assert_eq!(
            errors(quote::quote!(queue = "my queue"), ok_fn()),
            ["invalid queue name \"my queue\": may hold only ASCII letters, digits and _ - . : /"]
        );
    }

    #[test]
    fn the_default_queue_is_the_function_name_and_must_be_valid_too() {
        let d = def(
            TokenStream::new(),
            quote::quote!(
                async fn r#type(n: u32) -> Result<(), E> {
                    Ok(())
                }
            ),
        )
        .unwrap();
        assert_eq!((d.name.as_str(), d.queue.as_str()), ("type", "type"));
        let e = errors(
            TokenStream::new(),
            quote::quote!(
                async fn envoyé(n: u32) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert_eq!(
            e,
            [
                "the queue defaults to the function's name, and \"envoyé\" is not a valid \
              queue name (may hold only ASCII letters, digits and _ - . : /): set one with \
              `#[job(queue = \"...\")]`"
            ]
        );
        // An explicit queue makes the function's name irrelevant.
        assert!(def(
            quote::quote!(queue = "mail"),
            quote::quote!(
                async fn envoyé(n: u32) -> Result<(), E> {
                    Ok(())
                }
            ),
        )
        .is_ok());
    }

    #[test]
    fn borrowed_arguments_name_the_owned_type_to_take() {
        let msg = |t: Type| check_arg(&t).err();
        let take = |owned: &str, written: &str| {
            Some(format!(
                "the job's argument is deserialized from the stored payload and must be an \
                 owned type: take `{owned}` instead of `{written}`"
            ))
        };
        assert_eq!(msg(parse_quote!(&str)), take("String", "&str"));
        assert_eq!(msg(parse_quote!(&'a str)), take("String", "&'a str"));
        assert_eq!(
            msg(parse_quote!(&'static str)),
            take("String", "&'static str")
        );
        assert_eq!(msg(parse_quote!(&[u8])), take("Vec<u8>", "&[u8]"));
        assert_eq!(
            msg(parse_quote!(&'a [Email])),
            take("Vec<Email>", "&'a [Email]")
        );
        assert_eq!(msg(parse_quote!(&Email)), take("Email", "&Email"));
        assert_eq!(msg(parse_quote!(&'a Email)), take("Email", "&'a Email"));
        assert_eq!(msg(parse_quote!(&mut Email)), take("Email", "&mut Email"));
        assert_eq!(
            msg(parse_quote!(&std::path::Path)),
            take("std::path::PathBuf", "&std::path::Path")
        );
        assert_eq!(
            msg(parse_quote!(Vec<&str>)),
            take("Vec<String>", "Vec<&str>")
        );
        assert_eq!(
            msg(parse_quote!((u32, &'a [&'a str]))),
            take("(u32, Vec<String>)", "(u32, &'a [&'a str])")
        );
        assert_eq!(
            msg(parse_quote!(Cow<'a, str>)),
            take("String", "Cow<'a, str>")
        );
        assert_eq!(
            msg(parse_quote!(Option<Cow<'_, [u8]>>)),
            take("Option<Vec<u8>>", "Option<Cow<'_, [u8]>>")
        );
        assert_eq!(
            msg(parse_quote!(Email<'a>)),
            Some(
                "the job's argument is deserialized from the stored payload and must be an \
                 owned type, which `Email<'a>` is not"
                    .into()
            )
        );
        assert_eq!(
            msg(parse_quote!(&dyn Serialize)),
            Some(
                "the job's argument is deserialized from the stored payload and must be an \
                 owned type, which `&dyn Serialize` is not"
                    .into()
            )
        );
        assert!(msg(parse_quote!(impl Serialize))
            .unwrap()
            .contains("cannot be `impl Trait`"));
        // Owned types, and `'static` (which borrows nothing), pass.
        for ok in [
            parse_quote!(String),
            parse_quote!(Vec<(u64, String)>),
            parse_quote!(Cow<'static, str>),
            parse_quote!(std::collections::HashMap<String, Vec<u8>>),
            parse_quote!([u8; 4]),
        ] {
            assert_eq!(msg(ok), None);
        }
    }

    #[test]
    fn a_borrowed_context_is_refused_too() {
        assert_eq!(
            check_ctx(&parse_quote!(&JobContext)).unwrap_err(),
            "the job's context is handed to the function by value: take `JobContext` \
             instead of `&JobContext`"
        );
        assert_eq!(
            check_ctx(&parse_quote!(&'a honker_actors::JobContext)).unwrap_err(),
            "the job's context is handed to the function by value: take \
             `honker_actors::JobContext` instead of `&'a honker_actors::JobContext`"
        );
        assert!(check_ctx(&parse_quote!(honker_actors::JobContext)).is_ok());
        assert_eq!(
            check_ctx(&parse_quote!(u32)).unwrap_err(),
            "the first of two arguments must be `JobContext`"
        );
        // Both arguments, checked in one go.
        let e = errors(
            TokenStream::new(),
            quote::quote!(
                async fn f(ctx: &JobContext, s: &str) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert_eq!(e.len(), 2);
        assert!(e[0].contains("take `JobContext` instead of `&JobContext`"));
        assert!(e[1].contains("take `String` instead of `&str`"));
    }

    #[test]
    fn types_print_as_written() {
        for (ty, s) in [
            (parse_quote!(&'a mut [u8; 4]), "&'a mut [u8; 4]"),
            (parse_quote!(Vec<Vec<T>>), "Vec<Vec<T>>"),
            (parse_quote!(::std::path::Path), "::std::path::Path"),
            (
                parse_quote!(Box<dyn Fn(&str) -> u32 + Send + 'a>),
                "Box<dyn Fn(&str) -> u32 + Send + 'a>",
            ),
            (parse_quote!(<T as Trait>::Assoc), "<T as Trait>::Assoc"),
            (
                parse_quote!(Box<dyn Iterator<Item = u8>>),
                "Box<dyn Iterator<Item = u8>>",
            ),
            (parse_quote!((u32,)), "(u32,)"),
            (parse_quote!(&'a (u32, u32)), "&'a (u32, u32)"),
            (
                parse_quote!(&mut ::std::string::String),
                "&mut ::std::string::String",
            ),
            (parse_quote!(Cow<'a, str>), "Cow<'a, str>"),
            (parse_quote!(Foo<'a>), "Foo<'a>"),
            (parse_quote!(fn(u8) -> u8), "fn(u8) -> u8"),
            (parse_quote!(()), "()"),
        ] {
            let ty: Type = ty;
            assert_eq!(type_string(&ty), s);
        }
    }

    #[test]
    fn a_typical_function_parses_into_a_job_def() {
        let d = def(
            quote::quote!(
                queue = "emails",
                max_attempts = 5,
                priority = -2,
                timeout = "1500ms",
                backoff = "exponential(1s, 10m)",
                expires = "1h"
            ),
            quote::quote! {
                /// Sends one email.
                #[allow(unused_variables)]
                pub(crate) async fn send_email(ctx: JobContext, mut email: Email) -> Result<u64, JobError> {
                    Ok(1)
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.ident, "send_email");
        assert_eq!(
            (d.name.as_str(), d.queue.as_str()),
            ("send_email", "emails")
        );
        assert!(matches!(d.vis, Visibility::Restricted(_)));
        assert_eq!(
            d.options,
            Options {
                max_attempts: Some(5),
                priority: Some(-2),
                timeout_ms: Some(1500),
                backoff: Some(Backoff::Exponential {
                    base_secs: 1,
                    max_secs: 600
                }),
                expires_secs: Some(3600),
            }
        );
        let ctx = d.ctx.as_ref().expect("a context parameter");
        assert_eq!(type_string(&ctx.ty), "JobContext");
        assert_eq!(ctx.pat.to_token_stream().to_string(), "ctx");
        assert_eq!(type_string(&d.arg.ty), "Email");
        assert_eq!(d.arg.pat.to_token_stream().to_string(), "mut email");
        assert_eq!(type_string(&d.ret), "Result<u64, JobError>");
        assert_eq!(
            type_string(&d.output),
            "<Result<u64, JobError> as ::honker_actors::__private::JobResult>::Ok"
        );
        assert_eq!(d.docs.len(), 1);
        assert_eq!(d.attrs.len(), 1);
        assert!(d.attrs[0].path().is_ident("allow"));
        assert_eq!(d.body.stmts.len(), 1);

        let bare = def(TokenStream::new(), ok_fn()).unwrap();
        assert!(bare.ctx.is_none());
        assert_eq!((bare.name.as_str(), bare.queue.as_str()), ("f", "f"));
        assert_eq!(bare.options, Options::default());
    }

    #[test]
    fn signature_mistakes_are_each_reported() {
        let e = |item: TokenStream| errors(TokenStream::new(), item);
        assert_eq!(
            e(quote::quote!(
                fn f(n: u32) -> Result<(), E> {
                    Ok(())
                }
            )),
            ["#[job] needs an `async fn`"]
        );
        assert_eq!(
            e(quote::quote!(
                async fn f<T>(n: T) -> Result<(), E> {
                    Ok(())
                }
            )),
            ["a #[job] function cannot be generic"]
        );
        assert_eq!(
            e(quote::quote!(
                async fn f() -> Result<(), E> {
                    Ok(())
                }
            )),
            ["a #[job] function takes `(args: T)` or `(ctx: JobContext, args: T)`"]
        );
        assert_eq!(
            e(quote::quote!(
                async fn f(a: u8, b: u8, c: u8) -> Result<(), E> {
                    Ok(())
                }
            ))
            .len(),
            1
        );
        assert_eq!(
            e(quote::quote!(
                async fn f(&self) -> Result<(), E> {
                    Ok(())
                }
            )),
            ["a #[job] function cannot take `self`"]
        );
        assert_eq!(
            e(quote::quote!(
                async fn f(n: u32) {}
            )),
            ["a #[job] function must return `Result<O, E>` (for example `Result<(), JobError>`)"]
        );
        assert_eq!(
            e(quote::quote!(
                async unsafe fn f(n: u32) -> Result<(), E> {
                    Ok(())
                }
            )),
            ["a #[job] function cannot be `unsafe`"]
        );
        // Everything wrong at once: not async, bad queue, sub-second backoff, borrowed arg.
        let all = errors(
            quote::quote!(queue = "a b", backoff = "250ms"),
            quote::quote!(
                fn f(s: &str) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert_eq!(all.len(), 4, "{all:#?}");
    }

    #[test]
    fn option_values_are_checked() {
        let e = |attr: TokenStream| errors(attr, ok_fn());
        assert_eq!(
            e(quote::quote!(retries = 3)),
            [
                "unknown #[job] option `retries`; expected one of: queue, max_attempts, priority, \
              timeout, backoff, expires"
            ]
        );
        assert_eq!(
            e(quote::quote!(max_attempts = 0)),
            ["max_attempts must be at least 1"]
        );
        assert_eq!(e(quote::quote!(max_attempts = 5000000000)).len(), 1);
        assert!(
            e(quote::quote!(priority = HIGH))[0].starts_with("priority must be an integer literal")
        );
        assert!(e(quote::quote!(priority = 9223372036854775808))[0].contains("does not fit"));
        assert_eq!(
            def(quote::quote!(priority = -9223372036854775808), ok_fn())
                .unwrap()
                .options
                .priority,
            Some(i64::MIN)
        );
        assert_eq!(
            e(quote::quote!(queue = "a", queue = "b")),
            ["#[job] option `queue` is given twice"]
        );
        assert_eq!(
            e(quote::quote!(timeout = 30)).len(),
            1,
            "a string is expected"
        );
    }
}
