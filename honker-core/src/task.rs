//! The task envelope: how a payload names the job kind that runs it.
//!
//! The `honker` Python package's `@task` writes
//! `{"__honker_task__": {"task": NAME, "args": [..], "kwargs": {..}}}`;
//! typed Rust jobs write the same, so many kinds share a queue and each
//! language runs the other's tasks by name. A payload without the key is
//! *raw* (Python's `q.enqueue({...})`, or files written before envelopes).
//!
//! The mapping of arguments is documented on [`TaskCall`].

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
///
/// Mapping one argument value (a Rust job's `Args`) onto a call:
///
/// | written by Rust | envelope |
/// |---|---|
/// | `Args` that serializes to a JSON object | `args: []`, `kwargs`: the object |
/// | anything else | `args: [value]`, `kwargs: {}` |
///
/// | read by Rust, from a call with | `Args` decoded from |
/// |---|---|
/// | keywords only | the `kwargs` object |
/// | one positional `null`, into an `Option` | `None` |
/// | one positional argument | a struct with named fields (or an `Option` or `Box` of one): the `args` array, by field order (Python's `f(x)` sets the first parameter to `x`); any other type: `args[0]`, failing that the `args` array (a one-tuple) |
/// | several positional arguments | the `args` array (a tuple, or a struct by field order) |
/// | no arguments | `{}`; failing that, `null` (`()` or an `Option`) |
/// | positional and keyword arguments | nothing: [`TaskError::MixedArguments`] |
///
/// Rust writes a tuple as one positional argument, so a call with one
/// positional argument read into a one-tuple whose element takes both `x`
/// and `[x]` (a `serde_json::Value`, an untagged enum) reads `args[0]` as
/// the tuple: `(x,)` for Python's `f([x])`. Use a struct for such calls.
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

/// What `T`'s `Deserialize` asks for first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Shape {
    /// A struct with named fields, or an `Option` of one.
    named_struct: bool,
    /// An `Option` (of anything): `null` is its `None`.
    optional: bool,
}

/// The shape `T` deserializes as (asked of `T`'s `Deserialize` itself,
/// which names the shape it wants first; `Box` and `Arc` ask for their
/// content's).
fn shape_of<T: DeserializeOwned>() -> Shape {
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
    struct Probe<'a>(&'a std::cell::Cell<Shape>);
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
            self.0.set(Shape {
                named_struct: true,
                ..self.0.get()
            });
            Err(Stop)
        }
        /// `Option<S>` is a struct when `S` is: probe the inner type.
        fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
            self.0.set(Shape {
                optional: true,
                ..self.0.get()
            });
            v.visit_some(self)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let shape = std::cell::Cell::new(Shape::default());
    let _ = T::deserialize(Probe(&shape));
    shape.get()
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
    /// [`TaskCall`] docs.
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
            // `None` of an `Option` is written as `args: [null]`, and an
            // `Option` reads `null` as `None`, never as `Some` of a struct
            // whose fields all take `null`.
            ([one], true) if one.get() == "null" && shape_of::<T>().optional => {
                decode(one.get(), "args[0]")
            }
            // A struct is a parameter list: Python's `f(x)` sets its
            // first field to `x`, whatever `x` is.
            ([one], true) if shape_of::<T>().named_struct => decode(&self.args_array(), "args")
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
mod tests;

#[cfg(test)]
mod review;
