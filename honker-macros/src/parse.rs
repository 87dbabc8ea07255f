//! `#[job(..)]` and its function, parsed and checked once into a [`JobDef`].
//!
//! Every error a user can get from the attribute comes from here, at the
//! span of what is wrong; as many as can be found at once are reported
//! together. `expand` only writes code from a `JobDef`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{
    Attribute, Block, Expr, FnArg, Ident, ItemFn, LitInt, LitStr, Pat, ReturnType, Type, Visibility,
};

/// A `#[job]` function, checked: everything `expand` needs, and nothing it
/// has to validate.
pub(crate) struct JobDef {
    /// The function's visibility, given to the generated type and functions.
    pub vis: Visibility,
    /// The function's identifier as written (a raw `r#name` stays raw).
    pub ident: Ident,
    /// The job's name: the attribute's `name`, or the function's name
    /// without `r#`.
    pub name: String,
    /// The queue: the attribute's `queue`, or `default`.
    pub queue: String,
    /// Whether the job takes raw payloads (`raw`).
    pub raw: bool,
    /// Its schedule expression (`cron`).
    pub cron: Option<String>,
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
    /// Result expiry on disk: whole seconds.
    pub result_ttl_secs: Option<u64>,
    /// Unique by arguments: `Some(pending_only)`.
    pub unique: Option<bool>,
    /// Unique period on disk: whole seconds.
    pub unique_period_secs: Option<u64>,
}

const OPTIONS: &[&str] = &[
    "queue",
    "name",
    "raw",
    "max_attempts",
    "priority",
    "timeout",
    "backoff",
    "expires",
    "result_ttl",
    "unique",
    "unique_period",
    "cron",
];

impl JobDef {
    /// Parse and check the attribute's arguments and the function.
    pub(crate) fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<JobDef> {
        let mut errors = Errors::default();
        let attr = parse_attr(attr, &mut errors);
        let func: ItemFn = match syn::parse2(item) {
            Ok(f) => f,
            Err(e) => {
                errors.push(e);
                return Err(errors.finish().unwrap_err());
            }
        };
        let def = parse_fn(func, attr, &mut errors);
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

/// The attribute's arguments.
#[derive(Default)]
struct Attr {
    queue: Option<String>,
    name: Option<String>,
    raw: bool,
    cron: Option<String>,
    options: Options,
}

fn parse_attr(attr: TokenStream, errors: &mut Errors) -> Attr {
    let mut out = Attr::default();
    let Attr {
        queue,
        name,
        raw,
        cron,
        options,
    } = &mut out;
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
        if key == "unique" && !meta.input.peek(syn::Token![=]) {
            options.unique = Some(false);
            return Ok(());
        }
        if key == "raw" {
            if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                return Err(meta.error(
                    "`raw` takes no value: write `#[job(raw)]` for a job that takes its \
                     queue's raw payloads",
                ));
            }
            *raw = true;
            return Ok(());
        }
        let value = meta.value()?;
        match key.as_str() {
            "queue" => {
                let s: LitStr = value.parse()?;
                match queue_name_error(&s.value()) {
                    Some(reason) => errors.push(syn::Error::new(
                        s.span(),
                        format!("invalid queue name {:?}: {reason}", s.value()),
                    )),
                    None => *queue = Some(s.value()),
                }
            }
            "unique" => {
                let s: LitStr = value.parse()?;
                match s.value().as_str() {
                    "pending" => options.unique = Some(true),
                    "active" => options.unique = Some(false),
                    other => errors.push(syn::Error::new(
                        s.span(),
                        format!(
                            "unique is `unique` (while pending or running), \
                             `unique = \"active\"` (the same) or `unique = \"pending\"` \
                             (only while pending); got {other:?}"
                        ),
                    )),
                }
            }
            "cron" => {
                let s: LitStr = value.parse()?;
                let v = s.value();
                let fields = v.split_whitespace().count();
                if v.trim().starts_with("@every") || fields == 5 || fields == 6 {
                    *cron = Some(v);
                } else {
                    errors.push(syn::Error::new(
                        s.span(),
                        format!(
                            "cron is 5 or 6 fields (\"0 3 * * *\") or \"@every <n><unit>\"; got {v:?}"
                        ),
                    ));
                }
            }
            "name" => {
                let s: LitStr = value.parse()?;
                if s.value().is_empty() {
                    errors.push(syn::Error::new(s.span(), "a job's name must not be empty"));
                } else {
                    *name = Some(s.value());
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
            "timeout" | "backoff" | "expires" | "result_ttl" | "unique_period" => {
                let s: LitStr = value.parse()?;
                let v = s.value();
                let checked = match key.as_str() {
                    "timeout" => timeout(&v).map(|ms| options.timeout_ms = Some(ms)),
                    "backoff" => backoff(&v).map(|b| options.backoff = Some(b)),
                    "result_ttl" => result_ttl(&v).map(|secs| options.result_ttl_secs = Some(secs)),
                    "unique_period" => unique_period(&v).map(|secs| {
                        options.unique_period_secs = Some(secs);
                        options.unique.get_or_insert(false);
                    }),
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
    out
}

fn parse_fn(func: ItemFn, attr: Attr, errors: &mut Errors) -> Option<JobDef> {
    let Attr {
        queue,
        name,
        raw,
        cron,
        options,
    } = attr;
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

    let name = name.unwrap_or_else(|| sig.ident.unraw().to_string());
    // As in the Python package: jobs share the queue `default` unless told.
    let queue = Some(queue.unwrap_or_else(|| "default".to_string()));

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
    if let Some(ctx) = &ctx
        && let Err(msg) = check_ctx(&ctx.ty)
    {
        errors.push(syn::Error::new_spanned(&ctx.ty, msg));
    }
    if let Some(arg) = &arg
        && let Err(msg) = check_arg(&arg.ty)
    {
        errors.push(syn::Error::new_spanned(&arg.ty, msg));
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
        raw,
        cron,
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

use crate::options::{
    backoff, expires, priority, queue_name_error, result_ttl, timeout, unique_period, Backoff,
};
use crate::types::{check_arg, check_ctx};
