//! Unit tests of the parse: `JobDef` from typical and wrong functions,
//! option values (durations, backoffs, queue names, priority) and the
//! owned-type checks.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Type, Visibility};

use crate::options::*;
use crate::parse::*;
use crate::types::*;
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
        format!("invalid backoff {s:?}: write a fixed delay like \"5s\" or \"exponential(2s, 1h)\"")
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
fn the_queue_defaults_to_default_and_the_name_to_the_function_name() {
    let d = def(
        TokenStream::new(),
        quote::quote!(
            async fn r#type(n: u32) -> Result<(), E> {
                Ok(())
            }
        ),
    )
    .unwrap();
    assert_eq!(
        (d.name.as_str(), d.queue.as_str(), d.raw),
        ("type", "default", false)
    );
    // A function name that is no valid queue name is fine: it is no queue.
    let d = def(
        TokenStream::new(),
        quote::quote!(
            async fn envoyé(n: u32) -> Result<(), E> {
                Ok(())
            }
        ),
    )
    .unwrap();
    assert_eq!((d.name.as_str(), d.queue.as_str()), ("envoyé", "default"));
    let d = def(
        quote::quote!(name = "myapp.tasks.greet", queue = "q", raw),
        ok_fn(),
    )
    .unwrap();
    assert_eq!(
        (d.name.as_str(), d.queue.as_str(), d.raw),
        ("myapp.tasks.greet", "q", true)
    );
    let d = def(quote::quote!(raw, max_attempts = 2), ok_fn()).unwrap();
    assert!(d.raw);
    assert_eq!(d.options.max_attempts, Some(2));
}

#[test]
fn result_ttl_is_whole_seconds_and_at_least_one() {
    let e = |attr: TokenStream| errors(attr, ok_fn());
    assert_eq!(
        def(quote::quote!(result_ttl = "2h"), ok_fn())
            .unwrap()
            .options
            .result_ttl_secs,
        Some(7200)
    );
    assert_eq!(
        e(quote::quote!(result_ttl = "0s")),
        ["result_ttl \"0s\" would drop every result as it is saved: use at least \"1s\""]
    );
    assert_eq!(e(quote::quote!(result_ttl = "1500ms")).len(), 1);
}

#[test]
fn name_and_raw_are_checked() {
    let e = |attr: TokenStream| errors(attr, ok_fn());
    assert_eq!(
        e(quote::quote!(name = "")),
        ["a job's name must not be empty"]
    );
    assert_eq!(
        e(quote::quote!(raw = true)),
        ["`raw` takes no value: write `#[job(raw)]` for a job that takes its queue's raw payloads"]
    );
    assert_eq!(
        e(quote::quote!(raw, raw)),
        ["#[job] option `raw` is given twice"]
    );
    assert_eq!(e(quote::quote!(name = 5)).len(), 1);
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
            expires = "1h",
            result_ttl = "7d",
            unique = "pending",
            unique_period = "1m"
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
            result_ttl_secs: Some(7 * 86400),
            unique: Some(true),
            unique_period_secs: Some(60),
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
    assert_eq!((bare.name.as_str(), bare.queue.as_str()), ("f", "default"));
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
            "unknown #[job] option `retries`; expected one of: queue, name, raw, max_attempts, \
          priority, timeout, backoff, expires, result_ttl, unique, unique_period, cron"
        ]
    );
    assert_eq!(
        e(quote::quote!(max_attempts = 0)),
        ["max_attempts must be at least 1"]
    );
    assert_eq!(e(quote::quote!(max_attempts = 5000000000)).len(), 1);
    assert!(e(quote::quote!(priority = HIGH))[0].starts_with("priority must be an integer literal"));
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
