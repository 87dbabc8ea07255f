#![warn(missing_docs)]
//! `#[job]`: turns an `async fn` into a typed honker job.
//!
//! The expansion is thin: a unit struct named after the function that
//! implements `honker_actors::Job`, whose `run` calls the function's body,
//! and three associated functions (`enqueue`, `builder`, `enqueue_tx`) that
//! call `honker_actors::EnqueueBuilder`. All logic lives in
//! `honker-actors`; see its documentation for examples.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitInt, LitStr, Pat, ReturnType, Type};

/// Turn `async fn name([ctx: JobContext,] args: T) -> Result<O, E>` into a
/// typed job `name`: `WorkerPool::builder(&h).register(name)`,
/// `name::enqueue(&h, args).await`, `name::builder(args)...enqueue(&h).await`,
/// `name::enqueue_tx(&conn, args)`.
///
/// Options: `queue = "name"` (default: the function's name),
/// `max_attempts = 5`, `priority = 10`, `timeout = "30s"`,
/// `backoff = "5s"` (fixed) or `backoff = "exponential(2s, 1h)"`,
/// `expires = "1h"`. Durations: `250ms`, `30s`, `5m`, `1h`, `2d`.
#[proc_macro_attribute]
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    let original = TokenStream2::from(item.clone());
    let mut opts = Options::default();
    let parser = syn::meta::parser(|meta| opts.parse(meta));
    let result = syn::parse::Parser::parse(parser, attr)
        .and_then(|()| syn::parse::<ItemFn>(item))
        .and_then(|func| expand(opts, func));
    match result {
        Ok(ts) => ts.into(),
        // Keep the function as written, so the one error is all the user sees.
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(original);
            out.into()
        }
    }
}

#[derive(Default)]
struct Options {
    queue: Option<LitStr>,
    max_attempts: Option<LitInt>,
    priority: Option<syn::Expr>,
    timeout: Option<TokenStream2>,
    backoff: Option<TokenStream2>,
    expires: Option<TokenStream2>,
}

impl Options {
    fn parse(&mut self, meta: syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match key.as_str() {
            "queue" => {
                let s: LitStr = meta.value()?.parse()?;
                if s.value().is_empty() {
                    return Err(syn::Error::new(s.span(), "queue name must not be empty"));
                }
                self.queue = Some(s);
            }
            "max_attempts" => {
                let n: LitInt = meta.value()?.parse()?;
                if n.base10_parse::<u32>()? == 0 {
                    return Err(syn::Error::new(n.span(), "max_attempts must be at least 1"));
                }
                self.max_attempts = Some(n);
            }
            "priority" => self.priority = Some(meta.value()?.parse()?),
            "timeout" => self.timeout = Some(duration(&meta.value()?.parse()?)?),
            "expires" => self.expires = Some(duration(&meta.value()?.parse()?)?),
            "backoff" => self.backoff = Some(backoff(&meta.value()?.parse()?)?),
            _ => {
                return Err(meta.error(format!(
                    "unknown #[job] option `{}`; expected one of: queue, max_attempts, \
                     priority, timeout, backoff, expires",
                    meta.path
                        .get_ident()
                        .map(|i| i.to_string())
                        .unwrap_or_default()
                )))
            }
        }
        Ok(())
    }
}

/// `"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"2d"` as a `Duration` expression.
fn duration(lit: &LitStr) -> syn::Result<TokenStream2> {
    let millis = parse_millis(&lit.value()).ok_or_else(|| {
        syn::Error::new(
            lit.span(),
            format!(
                "invalid duration {:?}: write a whole number and a unit, \
                 one of ms, s, m, h, d (for example \"30s\" or \"250ms\")",
                lit.value()
            ),
        )
    })?;
    Ok(quote!(::std::time::Duration::from_millis(#millis)))
}

fn parse_millis(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// `"5s"` (fixed) or `"exponential(2s, 1h)"`.
fn backoff(lit: &LitStr) -> syn::Result<TokenStream2> {
    let v = lit.value();
    let v = v.trim();
    if let Some(inner) = v
        .strip_prefix("exponential(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let mut parts = inner.split(',').map(str::trim);
        let (base, max) = match (parts.next(), parts.next(), parts.next()) {
            (Some(b), Some(m), None) => (parse_millis(b), parse_millis(m)),
            _ => (None, None),
        };
        if let (Some(b), Some(m)) = (base, max) {
            return Ok(quote!(::honker_actors::Backoff::exponential(
                ::std::time::Duration::from_millis(#b),
                ::std::time::Duration::from_millis(#m)
            )));
        }
    } else if let Some(ms) = parse_millis(v) {
        return Ok(
            quote!(::honker_actors::Backoff::fixed(::std::time::Duration::from_millis(#ms))),
        );
    }
    Err(syn::Error::new(
        lit.span(),
        format!(
            "invalid backoff {v:?}: write a fixed delay like \"5s\" or \"exponential(2s, 1h)\""
        ),
    ))
}

fn expand(opts: Options, func: ItemFn) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            "#[job] needs an `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a #[job] function cannot be generic",
        ));
    }
    let inputs: Vec<&FnArg> = sig.inputs.iter().collect();
    let (has_ctx, arg) = match inputs.as_slice() {
        [arg] => (false, *arg),
        [_ctx, arg] => (true, *arg),
        _ => {
            return Err(syn::Error::new(
                sig.inputs
                    .span()
                    .join(sig.paren_token.span.join())
                    .unwrap_or(sig.ident.span()),
                "a #[job] function takes `(args: T)` or `(ctx: JobContext, args: T)`",
            ))
        }
    };
    let arg_ty: &Type = match arg {
        FnArg::Typed(p) => &p.ty,
        FnArg::Receiver(r) => {
            return Err(syn::Error::new(
                r.span(),
                "a #[job] function cannot take self",
            ))
        }
    };
    if let (true, Some(FnArg::Typed(p))) = (has_ctx, inputs.first()) {
        let is_ctx = matches!(&*p.ty, Type::Path(tp) if tp.path.segments.last().is_some_and(|s| s.ident == "JobContext"));
        if !is_ctx {
            return Err(syn::Error::new(
                p.ty.span(),
                "the first of two arguments must be `JobContext`",
            ));
        }
    }
    let ret_ty =
        match &sig.output {
            ReturnType::Type(_, ty) => (**ty).clone(),
            ReturnType::Default => return Err(syn::Error::new(
                sig.paren_token.span.join(),
                "a #[job] function must return `Result<O, E>` (for example `Result<(), JobError>`)",
            )),
        };
    let out_ty: Type = syn::parse_quote_spanned! {ret_ty.span()=>
        <#ret_ty as ::honker_actors::__private::JobResult>::Ok
    };

    let vis = &func.vis;
    let name = &sig.ident;
    let name_str = name.to_string();
    let queue = opts
        .queue
        .map(|q| q.value())
        .unwrap_or_else(|| name_str.clone());
    let (docs, attrs): (Vec<&syn::Attribute>, Vec<&syn::Attribute>) =
        func.attrs.iter().partition(|a| a.path().is_ident("doc"));
    let body = &func.block;
    let inner = format_ident!("__honker_job_{}", name);
    let ctx_pat: TokenStream2 = match inputs.first() {
        Some(FnArg::Typed(p)) if has_ctx => {
            // The user's own spelling of the type, so their import is used.
            let (pat, ty) = (&p.pat, &p.ty);
            quote!(#pat: #ty,)
        }
        _ => quote!(),
    };
    let arg_pat: &Pat = match arg {
        FnArg::Typed(p) => &p.pat,
        FnArg::Receiver(_) => unreachable!("rejected above"),
    };
    let call_ctx = if has_ctx { quote!(ctx,) } else { quote!() };
    let mut options = quote!(::honker_actors::JobOptions::default());
    if let Some(n) = &opts.max_attempts {
        options = quote!(#options.max_attempts(#n));
    }
    if let Some(p) = &opts.priority {
        options = quote!(#options.priority(#p));
    }
    if let Some(t) = &opts.timeout {
        options = quote!(#options.timeout(#t));
    }
    if let Some(b) = &opts.backoff {
        options = quote!(#options.backoff(#b));
    }
    if let Some(e) = &opts.expires {
        options = quote!(#options.expires(#e));
    }
    let into_result = quote_spanned! {ret_ty.span()=>
        ::honker_actors::__private::JobResult::into_result
    };
    let doc = format!(
        "The `{name_str}` job (queue `{queue}`), generated by `#[job]` from an `async fn`."
    );

    Ok(quote! {
        #(#docs)*
        #[doc = ""]
        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name;


        impl #name {
            /// Enqueue with the job's default options; returns the job id.
            #vis async fn enqueue(
                honker: &::honker_actors::Honker,
                args: #arg_ty,
            ) -> ::honker_actors::Result<i64> {
                ::honker_actors::EnqueueBuilder::<#name>::new(args).enqueue(honker).await
            }

            /// Enqueue with options (delay, run_at, priority, expires, max_attempts).
            #vis fn builder(args: #arg_ty) -> ::honker_actors::EnqueueBuilder<#name> {
                ::honker_actors::EnqueueBuilder::<#name>::new(args)
            }

            /// Enqueue on the application's own connection or transaction.
            #vis fn enqueue_tx(
                conn: &::honker_actors::core::rusqlite::Connection,
                args: #arg_ty,
            ) -> ::honker_actors::Result<i64> {
                ::honker_actors::EnqueueBuilder::<#name>::new(args).enqueue_tx(conn)
            }
        }

        impl ::honker_actors::Job for #name {
            const NAME: &'static str = #name_str;
            const QUEUE: &'static str = #queue;
            type Args = #arg_ty;
            type Output = #out_ty;

            fn options() -> ::honker_actors::JobOptions {
                #options
            }

            async fn run(
                &self,
                ctx: ::honker_actors::JobContext,
                args: #arg_ty,
            ) -> ::std::result::Result<#out_ty, ::honker_actors::JobError> {
                #(#attrs)*
                async fn #inner(#ctx_pat #arg_pat: #arg_ty) -> #ret_ty #body
                let _ = &ctx;
                match #into_result(#inner(#call_ctx args).await) {
                    ::std::result::Result::Ok(out) => ::std::result::Result::Ok(out),
                    ::std::result::Result::Err(e) => {
                        #[allow(unused_imports)]
                        use ::honker_actors::__private::{ViaDisplay as _, ViaJobError as _, ViaStdError as _};
                        ::std::result::Result::Err((&&&::honker_actors::__private::Wrap::new(e)).into_job_error())
                    }
                }
            }
        }
    })
}
