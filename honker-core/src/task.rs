//! The task envelope: how a payload names the job kind that runs it.
//!
//! The `honker` Python package's `@task` writes
//! `{"__honker_task__": {"task": NAME, "args": [..], "kwargs": {..}}}`;
//! typed Rust jobs write the same, so many kinds share a queue and each
//! language runs the other's tasks by name. A payload without the key is
//! *raw* (Python's `q.enqueue({...})`, or files written before envelopes).
//!
//! Mapping one argument value (a Rust job's `Args`) onto a call:
//!
//! | written by Rust | envelope |
//! |---|---|
//! | `Args` that serializes to a JSON object | `args: []`, `kwargs`: the object |
//! | anything else | `args: [value]`, `kwargs: {}` |
//!
//! | read by Rust, from a call with | `Args` decoded from |
//! |---|---|
//! | keywords only | the `kwargs` object |
//! | one positional argument | a struct with named fields: the `args` array, by field order (Python's `f(x)` sets the first parameter to `x`); any other type: `args[0]`, failing that the `args` array (a one-tuple) |
//! | several positional arguments | the `args` array (a tuple, or a struct by field order) |
//! | no arguments | `{}`; failing that, `null` (`()` or an `Option`) |
//! | positional and keyword arguments | nothing: [`TaskError::MixedArguments`] |
//!
//! Rust writes a tuple as one positional argument, so a call with one
//! positional argument read into a one-tuple whose element takes both `x`
//! and `[x]` (a `serde_json::Value`, an untagged enum) reads `args[0]` as
//! the tuple: `(x,)` for Python's `f([x])`. Use a struct for such calls.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The payload key that marks a task envelope.
pub const TASK_ENVELOPE: &str = "__honker_task__";

/// Why a payload cannot be read as a call of a job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The payload is not JSON.
    #[error("payload is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The payload has the envelope key, but its value is not an object
    /// with a string `task`, an array `args` and an object `kwargs`.
    #[error("malformed task envelope: {0}")]
    MalformedEnvelope(String),
    /// Both positional and keyword arguments: one argument value cannot
    /// take both.
    #[error(
        "cannot map {positional} positional argument(s) and keyword argument(s) {keywords:?} \
         onto one argument type; call the task with keywords only or positionals only"
    )]
    MixedArguments {
        /// How many positional arguments the call had.
        positional: usize,
        /// The keyword names.
        keywords: Vec<String>,
    },
    /// The arguments do not decode into the argument type.
    #[error("arguments do not decode into {type_name} ({from}): {source}")]
    Decode {
        /// The argument type.
        type_name: &'static str,
        /// Which part of the call was decoded.
        from: &'static str,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
}

/// A stored payload, read.
#[derive(Debug)]
pub enum Payload<'a> {
    /// A task call: the job kind's name and its arguments.
    Task(TaskCall),
    /// No envelope: the payload is the argument itself.
    Raw(&'a str),
}

/// One call of a task, as its envelope holds it.
#[derive(Debug)]
pub struct TaskCall {
    /// The task (job kind) name.
    pub name: String,
    args: Vec<Box<RawValue>>,
    kwargs: Box<RawValue>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "__honker_task__", borrow, default)]
    call: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CallFields<'a> {
    #[serde(borrow)]
    task: std::borrow::Cow<'a, str>,
    #[serde(default)]
    args: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    kwargs: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct NameOnly<'a> {
    #[serde(borrow)]
    task: std::borrow::Cow<'a, str>,
}

/// Whether `json` is an object: only objects can carry the envelope.
fn is_object(json: &str) -> bool {
    json.trim_start().starts_with('{')
}

/// The envelope's value, `None` for a raw payload (no key, or `null`).
fn envelope_of(json: &str) -> Result<Option<&RawValue>, TaskError> {
    if !is_object(json) {
        // Still JSON? A raw payload must be, to be decoded later.
        return Ok(None);
    }
    let env: Envelope<'_> = serde_json::from_str(json).map_err(|e| match e.classify() {
        // JSON, but not one envelope (a duplicate key).
        serde_json::error::Category::Data => TaskError::MalformedEnvelope(e.to_string()),
        _ => TaskError::NotJson(e),
    })?;
    Ok(env.call.filter(|raw| raw.get() != "null"))
}

/// The task name a payload's envelope carries, `None` for a raw payload.
/// Reads nothing else: the claim loop routes with it.
///
/// ```
/// use honker_core::task_name;
/// let p = r#"{"__honker_task__": {"task": "greet", "args": [], "kwargs": {"name": "ada"}}}"#;
/// assert_eq!(task_name(p).unwrap().as_deref(), Some("greet"));
/// assert_eq!(task_name(r#"{"to": "a@b.c"}"#).unwrap(), None);
/// assert!(task_name(r#"{"__honker_task__": 5}"#).is_err());
/// ```
pub fn task_name(json: &str) -> Result<Option<std::borrow::Cow<'_, str>>, TaskError> {
    let Some(call) = envelope_of(json)? else {
        return Ok(None);
    };
    let fields: NameOnly<'_> = serde_json::from_str(call.get())
        .map_err(|e| TaskError::MalformedEnvelope(envelope_problem(&e)))?;
    Ok(Some(fields.task))
}

/// The task name of a payload that opens the way the Python package and
/// typed enqueues write it (`{"__honker_task__": {"task": "NAME"`, spaces
/// allowed, no escapes in the name), read without looking further; `None`
/// for any other payload, which needs [`task_name`]. A router uses it on
/// its hot path and leaves the full check to [`read_payload`] before the
/// call runs: it never names a task the full reading would not.
///
/// ```
/// let p = r#"{"__honker_task__": {"task": "greet", "args": [], "kwargs": {}}}"#;
/// assert_eq!(honker_core::leading_task_name(p), Some("greet"));
/// assert_eq!(honker_core::leading_task_name(r#"{"to": 1}"#), None);
/// ```
pub fn leading_task_name(json: &str) -> Option<&str> {
    fn token<'a>(s: &'a str, t: &str) -> Option<&'a str> {
        s.trim_start_matches([' ', '\t', '\n', '\r'])
            .strip_prefix(t)
    }
    let rest = token(json, "{")?;
    let rest = token(rest, "\"__honker_task__\"")?;
    let rest = token(rest, ":")?;
    let rest = token(rest, "{")?;
    let rest = token(rest, "\"task\"")?;
    let rest = token(rest, ":")?;
    let rest = token(rest, "\"")?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes()[end] == b'"').then(|| &rest[..end])
}

/// Read a stored payload: a task call, or raw.
///
/// ```
/// use honker_core::{read_payload, Payload};
/// let p = r#"{"__honker_task__": {"task": "add", "args": [1, 2], "kwargs": {}}}"#;
/// let Payload::Task(call) = read_payload(p).unwrap() else { panic!() };
/// assert_eq!(call.name, "add");
/// assert_eq!(call.decode::<(i32, i32)>().unwrap(), (1, 2));
/// assert!(matches!(read_payload("[1, 2]").unwrap(), Payload::Raw(_)));
/// ```
pub fn read_payload(json: &str) -> Result<Payload<'_>, TaskError> {
    let Some(call) = envelope_of(json)? else {
        return Ok(Payload::Raw(json));
    };
    let fields: CallFields<'_> = serde_json::from_str(call.get())
        .map_err(|e| TaskError::MalformedEnvelope(envelope_problem(&e)))?;
    let kwargs = match fields.kwargs {
        Some(k) if k.get().trim_start().starts_with('{') => k,
        Some(k) if k.get() == "null" => empty_object(),
        Some(k) => {
            return Err(TaskError::MalformedEnvelope(format!(
                "kwargs must be an object, not {}",
                k.get()
            )))
        }
        None => empty_object(),
    };
    Ok(Payload::Task(TaskCall {
        name: fields.task.into_owned(),
        args: fields.args.unwrap_or_default(),
        kwargs,
    }))
}

/// The keys of a JSON object, in order; the values are skipped unread.
struct KeyNames(Vec<String>);

impl<'de> Deserialize<'de> for KeyNames {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> serde::de::Visitor<'de> for Names {
            type Value = KeyNames;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of keyword arguments")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<KeyNames, M::Error> {
                let mut names = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<serde::de::IgnoredAny>()?;
                    names.push(k);
                }
                Ok(KeyNames(names))
            }
        }
        d.deserialize_map(Names)
    }
}

/// Whether `T` deserializes as a struct with named fields, or an `Option`
/// of one (asked of `T`'s `Deserialize` itself, which names the shape it
/// wants first; `Box` and `Arc` ask for their content's).
fn is_named_struct<T: DeserializeOwned>() -> bool {
    use serde::de::{Deserializer, Visitor};

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("shape probed")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    struct Probe<'a>(&'a std::cell::Cell<bool>);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            _: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.set(true);
            Err(Stop)
        }
        /// `Option<S>` is a struct when `S` is: probe the inner type.
        fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
            v.visit_some(self)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let named = std::cell::Cell::new(false);
    let _ = T::deserialize(Probe(&named));
    named.get()
}

fn envelope_problem(e: &serde_json::Error) -> String {
    format!(
        "expected {{\"task\": name, \"args\": [...], \"kwargs\": {{...}}}}: {}",
        e
    )
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_string()).expect("{} is JSON")
}

impl TaskCall {
    /// A call of task `name` with positional `args` and keyword `kwargs`
    /// (each a JSON value), as the Python package writes one.
    ///
    /// ```
    /// let call = honker_core::TaskCall::new("greet", vec![], r#"{"name":"ada"}"#).unwrap();
    /// assert_eq!(call.keywords().unwrap(), vec!["name".to_string()]);
    /// ```
    pub fn new(name: &str, args: Vec<String>, kwargs: &str) -> Result<TaskCall, TaskError> {
        let args = args
            .into_iter()
            .map(RawValue::from_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(TaskError::NotJson)?;
        let kwargs = RawValue::from_string(kwargs.to_string()).map_err(TaskError::NotJson)?;
        if !kwargs.get().trim_start().starts_with('{') {
            return Err(TaskError::MalformedEnvelope(
                "kwargs must be an object".into(),
            ));
        }
        Ok(TaskCall {
            name: name.to_string(),
            args,
            kwargs,
        })
    }

    /// How many positional arguments the call has.
    pub fn positional(&self) -> usize {
        self.args.len()
    }

    /// The keyword names, in the order written. Reads only the names: a
    /// value any JSON reader takes (however deep, however large a number)
    /// never makes the call look as if it had no keywords.
    pub fn keywords(&self) -> Result<Vec<String>, TaskError> {
        serde_json::from_str::<KeyNames>(self.kwargs.get())
            .map(|k| k.0)
            .map_err(|e| TaskError::MalformedEnvelope(format!("kwargs: {e}")))
    }

    /// Decode the call's arguments into one value, by the rules in the
    /// [module docs](self).
    ///
    /// ```
    /// #[derive(serde::Deserialize, PartialEq, Debug)]
    /// struct Greet { name: String }
    /// let by_keyword = honker_core::TaskCall::new("greet", vec![], r#"{"name":"ada"}"#).unwrap();
    /// let by_position = honker_core::TaskCall::new("greet", vec![r#""ada""#.into()], "{}").unwrap();
    /// let ada = Greet { name: "ada".into() };
    /// assert_eq!(by_keyword.decode::<Greet>().unwrap(), ada);
    /// assert_eq!(by_position.decode::<Greet>().unwrap(), ada);
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        let type_name = std::any::type_name::<T>();
        let decode = |json: &str, from: &'static str| {
            serde_json::from_str::<T>(json).map_err(|source| TaskError::Decode {
                type_name,
                from,
                source,
            })
        };
        let no_keywords = self.has_no_keywords();
        match (self.args.as_slice(), no_keywords) {
            ([], false) => decode(self.kwargs.get(), "kwargs"),
            ([], true) => decode("{}", "no arguments")
                .or_else(|first| serde_json::from_str::<T>("null").map_err(|_| first)),
            // A struct is a parameter list: Python's `f(x)` sets its
            // first field to `x`, whatever `x` is.
            // (`None` of an `Option` of one is `null`: `args[0]`.)
            ([one], true) if is_named_struct::<T>() => decode(&self.args_array(), "args")
                .or_else(|first| decode(one.get(), "args[0]").map_err(|_| first)),
            ([one], true) => decode(one.get(), "args[0]")
                .or_else(|first| decode(&self.args_array(), "args").map_err(|_| first)),
            (_, true) => decode(&self.args_array(), "args"),
            (many, false) => Err(TaskError::MixedArguments {
                positional: many.len(),
                keywords: self.keywords()?,
            }),
        }
    }

    /// Whether `kwargs` is `{}` (whitespace aside): it is an object, so
    /// that is exactly the empty one.
    fn has_no_keywords(&self) -> bool {
        let inner = self.kwargs.get().trim();
        inner
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .is_some_and(|r| r.trim().is_empty())
    }

    fn args_array(&self) -> String {
        let mut s = String::from("[");
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(a.get());
        }
        s.push(']');
        s
    }
}

/// The payload a typed enqueue of task `name` writes: an `args` value
/// that serializes to a JSON object is the keyword arguments, anything
/// else the one positional argument.
///
/// ```
/// use serde_json::json;
/// let p = honker_core::task_payload("greet", &json!({"name": "ada"})).unwrap();
/// assert_eq!(serde_json::from_str::<serde_json::Value>(&p).unwrap(),
///     json!({"__honker_task__": {"task": "greet", "args": [], "kwargs": {"name": "ada"}}}));
/// let p = honker_core::task_payload("square", &7).unwrap();
/// assert!(p.contains(r#""args":[7],"kwargs":{}"#));
/// ```
pub fn task_payload<A: Serialize + ?Sized>(
    name: &str,
    args: &A,
) -> Result<String, serde_json::Error> {
    const OPEN: &str = "{\"__honker_task__\":{\"task\":";
    let mut out = Vec::with_capacity(OPEN.len() + name.len() + 64);
    out.extend_from_slice(OPEN.as_bytes());
    serde_json::to_writer(&mut out, name)?;
    out.extend_from_slice(b",\"args\":[");
    let value_at = out.len();
    serde_json::to_writer(&mut out, args)?;
    if out.get(value_at) == Some(&b'{') {
        // An object: the keyword arguments, after an empty `args`.
        let value = out.split_off(value_at);
        out.extend_from_slice(b"],\"kwargs\":");
        out.extend_from_slice(&value);
        out.extend_from_slice(b"}}");
    } else {
        out.extend_from_slice(b"],\"kwargs\":{}}}");
    }
    // Only serde_json wrote between the ASCII pieces: UTF-8.
    String::from_utf8(out).map_err(serde::ser::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(args: serde_json::Value, kwargs: serde_json::Value) -> TaskCall {
        let payload = json!({TASK_ENVELOPE: {"task": "t", "args": args, "kwargs": kwargs}});
        match read_payload(&payload.to_string()).unwrap() {
            Payload::Task(c) => c,
            Payload::Raw(_) => panic!("an envelope read as raw"),
        }
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Greet {
        name: String,
        #[serde(default)]
        times: u32,
    }

    #[test]
    fn a_struct_is_written_as_keywords_and_read_back() {
        let g = Greet {
            name: "ada".into(),
            times: 2,
        };
        let p = task_payload("greet", &g).unwrap();
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v[TASK_ENVELOPE]["args"], json!([]));
        assert_eq!(
            v[TASK_ENVELOPE]["kwargs"],
            json!({"name": "ada", "times": 2})
        );
        let Payload::Task(c) = read_payload(&p).unwrap() else {
            panic!()
        };
        assert_eq!(c.name, "greet");
        assert_eq!(c.decode::<Greet>().unwrap(), g);
    }

    #[test]
    fn non_objects_are_written_as_one_positional_argument_and_read_back() {
        for (value, expect) in [
            (json!(7), json!([7])),
            (json!("x"), json!(["x"])),
            (json!([1, 2]), json!([[1, 2]])),
            (json!(null), json!([null])),
        ] {
            let p = task_payload("t", &value).unwrap();
            let v: serde_json::Value = serde_json::from_str(&p).unwrap();
            assert_eq!(v[TASK_ENVELOPE]["args"], expect);
            assert_eq!(v[TASK_ENVELOPE]["kwargs"], json!({}));
            let Payload::Task(c) = read_payload(&p).unwrap() else {
                panic!()
            };
            assert_eq!(c.decode::<serde_json::Value>().unwrap(), value);
        }
        // A tuple and a Vec round-trip as one positional argument too.
        let p = task_payload("t", &(1, "a")).unwrap();
        let Payload::Task(c) = read_payload(&p).unwrap() else {
            panic!()
        };
        assert_eq!(c.decode::<(i32, String)>().unwrap(), (1, "a".into()));
        let p = task_payload("t", &vec![5]).unwrap();
        let Payload::Task(c) = read_payload(&p).unwrap() else {
            panic!()
        };
        assert_eq!(c.decode::<Vec<i32>>().unwrap(), vec![5]);
        // So does unit.
        let p = task_payload("t", &()).unwrap();
        let Payload::Task(c) = read_payload(&p).unwrap() else {
            panic!()
        };
        c.decode::<()>().unwrap();
    }

    #[test]
    fn python_calls_map_onto_argument_types() {
        // greet(name="ada")
        let c = call(json!([]), json!({"name": "ada"}));
        assert_eq!(c.decode::<Greet>().unwrap().name, "ada");
        // greet("ada"): one positional, a struct takes it by field order.
        let c = call(json!(["ada"]), json!({}));
        assert_eq!(c.decode::<Greet>().unwrap().name, "ada");
        assert_eq!(c.decode::<String>().unwrap(), "ada");
        // greet("ada", 3): several positionals, a tuple or a struct.
        let c = call(json!(["ada", 3]), json!({}));
        assert_eq!(c.decode::<(String, u32)>().unwrap(), ("ada".into(), 3));
        assert_eq!(
            c.decode::<Greet>().unwrap(),
            Greet {
                name: "ada".into(),
                times: 3
            }
        );
        // A one-tuple from one positional.
        let c = call(json!([5]), json!({}));
        assert_eq!(c.decode::<(i32,)>().unwrap(), (5,));
        // No arguments: a struct of defaults, unit, or None.
        let c = call(json!([]), json!({}));
        c.decode::<()>().unwrap();
        assert_eq!(c.decode::<Option<u32>>().unwrap(), None);
        #[derive(Deserialize, Default, PartialEq, Debug)]
        struct NoArgs {
            #[serde(default)]
            n: u32,
        }
        assert_eq!(c.decode::<NoArgs>().unwrap(), NoArgs::default());
    }

    #[test]
    fn a_mix_of_positional_and_keyword_arguments_is_refused_naming_why() {
        let c = call(json!(["ada"]), json!({"times": 2}));
        let e = c.decode::<Greet>().unwrap_err();
        assert!(
            matches!(e, TaskError::MixedArguments { positional: 1, ref keywords } if keywords == &["times"])
        );
        assert!(e.to_string().contains("positional"), "{e}");
    }

    #[test]
    fn a_decode_failure_names_the_type_and_the_part_of_the_call() {
        let c = call(json!([]), json!({"nom": "ada"}));
        let e = c.decode::<Greet>().unwrap_err().to_string();
        assert!(
            e.contains("Greet") && e.contains("kwargs") && e.contains("name"),
            "{e}"
        );
        let c = call(json!(["x", "y", "z"]), json!({}));
        let e = c.decode::<(u32, u32)>().unwrap_err().to_string();
        assert!(e.contains("args"), "{e}");
        let c = call(json!([true]), json!({}));
        let e = c.decode::<u32>().unwrap_err().to_string();
        assert!(e.contains("args[0]"), "{e}");
    }

    #[test]
    fn payloads_without_the_envelope_are_raw() {
        for p in [
            r#"{"to":"a"}"#,
            "7",
            r#""s""#,
            "[1]",
            "null",
            r#"{"__honker_task__": null}"#,
        ] {
            assert!(
                matches!(read_payload(p).unwrap(), Payload::Raw(r) if r == p),
                "{p}"
            );
            assert!(task_name(p).unwrap().is_none(), "{p}");
        }
    }

    #[test]
    fn malformed_envelopes_are_errors_naming_the_problem() {
        for p in [
            r#"{"__honker_task__": 5}"#,
            r#"{"__honker_task__": {"args": []}}"#,
            r#"{"__honker_task__": {"task": 3}}"#,
            r#"{"__honker_task__": {"task": "t", "args": {}}}"#,
            r#"{"__honker_task__": {"task": "t", "kwargs": [1]}}"#,
            r#"{"__honker_task__": []}"#,
        ] {
            let e = read_payload(p).unwrap_err();
            assert!(matches!(e, TaskError::MalformedEnvelope(_)), "{p}: {e}");
        }
        assert!(matches!(
            read_payload("{not json").unwrap_err(),
            TaskError::NotJson(_)
        ));
        // Missing args and kwargs default to none, as Python reads them.
        let Payload::Task(c) = read_payload(r#"{"__honker_task__": {"task": "t"}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!((c.positional(), c.keywords().unwrap().len()), (0, 0));
    }

    #[test]
    fn names_with_quotes_and_unicode_survive_the_envelope() {
        let name = "tasks.\"quoted\".ünï\\";
        let p = task_payload(name, &1).unwrap();
        assert_eq!(task_name(&p).unwrap().as_deref(), Some(name));
        let Payload::Task(c) = read_payload(&p).unwrap() else {
            panic!()
        };
        assert_eq!(c.name, name);
    }

    #[test]
    fn other_keys_beside_the_envelope_are_ignored() {
        let p = r#"{"trace": 1, "__honker_task__": {"task": "t", "args": [1], "kwargs": {}}}"#;
        assert_eq!(task_name(p).unwrap().as_deref(), Some("t"));
    }
}

/// Cases an outside review found: each once decoded silently wrong.
#[cfg(test)]
mod review {
    use super::*;
    use serde_json::json;

    fn roundtrip<T: Serialize + DeserializeOwned>(v: &T) -> Result<T, TaskError> {
        let p = task_payload("t", v).unwrap();
        match read_payload(&p)? {
            Payload::Task(c) => c.decode::<T>(),
            Payload::Raw(_) => panic!("an envelope read as raw"),
        }
    }

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    fn py_call(args: &str, kwargs: &str) -> TaskCall {
        let p = format!(
            r#"{{"__honker_task__": {{"task": "t", "args": {args}, "kwargs": {kwargs}}}}}"#
        );
        match read_payload(&p).unwrap() {
            Payload::Task(c) => c,
            Payload::Raw(_) => panic!("raw"),
        }
    }

    #[derive(Serialize, Deserialize, Debug)]
    struct Opts {
        #[serde(default)]
        verbose: bool,
        #[serde(default)]
        blob: Option<Box<RawValue>>,
    }

    #[test]
    fn keywords_whose_values_a_value_tree_cannot_hold_are_still_keywords() {
        // A number beyond f64, and nesting beyond serde_json's Value limit:
        // plain serde_json round-trips both, so the envelope must too.
        for blob in ["1e400".to_string(), nested(200)] {
            let v = Opts {
                verbose: true,
                blob: Some(RawValue::from_string(blob.clone()).unwrap()),
            };
            let back = roundtrip(&v).unwrap_or_else(|e| panic!("{blob:.20}: {e}"));
            assert!(back.verbose && back.blob.is_some(), "{blob:.20}: {back:?}");
        }
        #[derive(Serialize, Deserialize, Debug)]
        struct Req {
            id: u32,
            blob: Box<RawValue>,
        }
        let some = Some(Req {
            id: 1,
            blob: RawValue::from_string("1e400".into()).unwrap(),
        });
        assert_eq!(roundtrip(&some).unwrap().map(|r| r.id), Some(1));
        // Python ints are unbounded: f(a=5, n=10**400).
        #[derive(Deserialize, Debug)]
        struct Loose {
            #[serde(default)]
            a: u32,
        }
        let c = py_call("[]", &format!(r#"{{"a": 5, "n": 1{}}}"#, "0".repeat(400)));
        assert_eq!(c.keywords().unwrap(), ["a", "n"]);
        assert_eq!(c.decode::<Loose>().unwrap().a, 5);
    }

    #[test]
    fn one_python_positional_argument_is_a_structs_first_field_whatever_it_is() {
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        #[derive(Deserialize, Debug, PartialEq)]
        struct Notify {
            to: OneOrMany,
        }
        #[derive(Deserialize, Debug, PartialEq)]
        struct Store {
            doc: serde_json::Value,
        }
        // notify(["ops@x"]) is notify(to=["ops@x"]).
        assert_eq!(
            py_call(r#"[["ops@x"]]"#, "{}").decode::<Notify>().unwrap(),
            Notify {
                to: OneOrMany::Many(vec!["ops@x".into()])
            }
        );
        assert_eq!(
            py_call("[[7]]", "{}").decode::<Store>().unwrap().doc,
            json!([7])
        );
        assert_eq!(
            py_call(r#"[{"doc": 1}]"#, "{}")
                .decode::<Store>()
                .unwrap()
                .doc,
            json!({"doc": 1})
        );
        // Rust's own one positional arguments still read back as written.
        assert_eq!(roundtrip(&vec![json!([7])]).unwrap(), vec![json!([7])]);
        assert_eq!(roundtrip(&(json!([7]),)).unwrap(), (json!([7]),));
        assert_eq!(roundtrip(&json!([1, 2])).unwrap(), json!([1, 2]));
    }

    #[test]
    fn every_serde_shape_round_trips() {
        use std::collections::{BTreeMap, HashMap};
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        enum E {
            A { x: i32 },
            B(i32),
            C,
            F(i32, i32),
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        #[serde(untagged)]
        enum U {
            Pair(i32, i32),
            One(i32),
            Map(BTreeMap<String, i32>),
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Inner {
            y: i32,
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Flat {
            x: i32,
            #[serde(flatten)]
            inner: Inner,
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Nt(String);
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Empty {}
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        #[serde(tag = "type")]
        enum Tagged {
            A { x: i32 },
            B,
        }
        macro_rules! rt {
            ($($v:expr),* $(,)?) => { $( {
                let v = $v;
                assert_eq!(roundtrip(&v).unwrap_or_else(|e| panic!("{:?}: {e}", v)), v);
            } )* }
        }
        rt!(E::A { x: 1 }, E::B(2), E::C, E::F(1, 2));
        rt!(U::Pair(1, 2), U::One(3), U::Map(BTreeMap::new()));
        rt!(
            Flat {
                x: 1,
                inner: Inner { y: 2 }
            },
            Nt("x".into()),
            Empty {}
        );
        rt!(
            Tagged::A { x: 1 },
            Tagged::B,
            Some(Inner { y: 1 }),
            None::<Inner>
        );
        rt!(
            (1,),
            (1, "a".to_string()),
            vec![vec![1]],
            Vec::<i32>::new(),
            ()
        );
        rt!(
            HashMap::<i64, String>::from([(-1, "a".into())]),
            BTreeMap::<bool, i32>::new()
        );
        rt!(
            String::from("\u{0}\"\\\u{2028}é😀"),
            u128::MAX,
            i128::MIN,
            f64::MAX
        );
        rt!(
            json!({}),
            json!(null),
            json!([]),
            json!([null]),
            Some(Empty {})
        );
    }

    #[test]
    fn the_leading_name_never_names_a_task_the_full_reading_would_not() {
        let name = "greet";
        let cases = [
            r#"{"__honker_task__":{"task":"greet","args":[],"kwargs":{}}}"#.to_string(),
            r#"{"__honker_task__": {"task": "greet", "args": [1], "kwargs": {}}}"#.to_string(),
            "{ \"__honker_task__\" :\n{ \"task\" : \"greet\" } }".to_string(),
            // Full reading refuses these; the leading name may be read.
            r#"{"__honker_task__": {"task": "greet", "task": "evil"}}"#.to_string(),
            r#"{"__honker_task__": {"task": "greet"}, "__honker_task__": {"task": "evil"}}"#
                .to_string(),
            r#"{"__honker_task__": {"task": "greet", "args": {}}}"#.to_string(),
            // The leading name declines these; full reading decides.
            r#"{"__honker_task__": {"task": "gr\u0065et"}}"#.to_string(),
            r#"{"other": 1, "__honker_task__": {"task": "greet"}}"#.to_string(),
            r#"{"__honker_task__": {"args": [], "task": "greet"}}"#.to_string(),
            r#"{"__honker_task__": {"task": "greet"#.to_string(),
            task_payload("greet", &json!({"a": [1, {"b": "\""}]})).unwrap(),
        ];
        for p in &cases {
            let full = task_name(p);
            match leading_task_name(p) {
                Some(n) => {
                    assert_eq!(n, name, "{p}");
                    assert!(
                        matches!(&full, Ok(Some(f)) if f == n) || full.is_err(),
                        "{p}: leading {n:?}, full {full:?}"
                    );
                }
                None => assert!(
                    !p.starts_with(r#"{"__honker_task__":{"task":"greet""#),
                    "{p}"
                ),
            }
        }
        assert_eq!(leading_task_name(&task_payload("a\"b", &1).unwrap()), None);
        assert_eq!(
            task_name(&task_payload("a\"b", &1).unwrap())
                .unwrap()
                .as_deref(),
            Some("a\"b")
        );
    }

    #[test]
    fn a_duplicated_envelope_is_malformed_not_unreadable() {
        let p = r#"{"__honker_task__": {"task": "a"}, "__honker_task__": {"task": "b"}}"#;
        assert!(
            matches!(task_name(p), Err(TaskError::MalformedEnvelope(_))),
            "{:?}",
            task_name(p)
        );
        // Python's json.dumps writes NaN; that is not JSON, and says so.
        let p = r#"{"__honker_task__": {"task": "t", "args": [], "kwargs": {"r": NaN}}}"#;
        assert!(matches!(read_payload(p), Err(TaskError::NotJson(_))));
    }
}
