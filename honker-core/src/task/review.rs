//! Cases an outside review found: each once decoded silently wrong.

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
    let p =
        format!(r#"{{"__honker_task__": {{"task": "t", "args": {args}, "kwargs": {kwargs}}}}}"#);
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

#[test]
fn none_of_an_option_of_a_struct_whose_fields_take_null_reads_back_as_none() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Window {
        since: Option<i64>,
    }
    let none: Option<Window> = None;
    let p = task_payload("t", &none).unwrap();
    assert!(p.contains(r#""args":[null]"#), "{p}");
    assert_eq!(roundtrip(&none).unwrap(), None);
    let some = Some(Window { since: None });
    assert_eq!(roundtrip(&some).unwrap(), some);
    // A struct (not an `Option`) still takes Python's `f(None)` as its
    // first field.
    assert_eq!(
        py_call("[null]", "{}").decode::<Window>().unwrap(),
        Window { since: None }
    );
}

mod shapes {
    //! Every shape Rust writes reads back as serde_json itself reads it
    //! back (JSON cannot tell `Some(None)` from `None`; nothing else is
    //! lost).
    use super::*;
    use proptest::prelude::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct OneOpt {
        since: Option<i64>,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct OneVec {
        items: Vec<Option<OneOpt>>,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Defaulted {
        #[serde(default)]
        n: u8,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct New(Option<OneOpt>);
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Unit;
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum E {
        Unit,
        New(Option<OneOpt>),
        Tuple(Option<i64>, Option<OneOpt>),
        Named { w: Option<OneOpt> },
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    #[serde(untagged)]
    enum Untagged {
        W(OneOpt),
        N(Option<i64>),
    }

    fn one_opt() -> impl Strategy<Value = OneOpt> + Clone {
        proptest::option::of(any::<i64>()).prop_map(|since| OneOpt { since })
    }
    fn e() -> impl Strategy<Value = E> {
        let w = proptest::option::of(one_opt());
        prop_oneof![
            Just(E::Unit),
            w.clone().prop_map(E::New),
            (proptest::option::of(any::<i64>()), w.clone()).prop_map(|(a, b)| E::Tuple(a, b)),
            w.prop_map(|w| E::Named { w }),
        ]
    }

    /// `v` reads back from its envelope as serde_json reads it back.
    fn same<T>(v: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_string(v).unwrap();
        let plain: T = serde_json::from_str(&json).unwrap();
        let back = roundtrip(v).unwrap_or_else(|e| panic!("{v:?} ({json}): {e}"));
        assert_eq!(back, plain, "{v:?} written as {json}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn nested_options_enums_and_one_field_structs(
            a in proptest::option::of(proptest::option::of(one_opt())),
            b in proptest::option::of(e()),
            c in proptest::collection::vec(proptest::option::of(one_opt()), 0..3),
            d in proptest::option::of(proptest::option::of(any::<i64>())),
            n in proptest::option::of(any::<u8>()),
        ) {
            same(&a);
            same(&a.clone().flatten());
            same(&b);
            same(&b.clone().map(Box::new));
            same(&OneVec { items: c.clone() });
            same(&Some(OneVec { items: c.clone() }));
            same(&(a.clone().flatten(),));
            same(&(a.clone().flatten(), d));
            same(&New(a.clone().flatten()));
            same(&Some(New(a.clone().flatten())));
            same(&d);
            same(&n.map(|n| Defaulted { n }));
            same(&Some(Unit));
            same(&None::<Unit>);
            same(&a.clone().flatten().map(Untagged::W));
            same(&Untagged::N(d.flatten()));
            same(&a.flatten().map(|w| vec![w]));
        }
    }
}
