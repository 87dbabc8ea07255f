//! The envelope's rules: writing, reading, routing names.

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
    let Payload::Task(c) = read_payload(r#"{"__honker_task__": {"task": "t"}}"#).unwrap() else {
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

#[test]
fn a_malformed_envelope_says_what_an_envelope_holds_and_null_kwargs_are_none() {
    let e = read_payload(r#"{"__honker_task__": {"args": []}}"#).unwrap_err();
    let said = e.to_string();
    assert!(
        said.contains(r#"expected {"task": name, "args": [...], "kwargs": {...}}"#)
            && said.contains("task"),
        "{said}"
    );
    // Python writes `kwargs: null` for none: no keywords, not malformed.
    let Payload::Task(c) =
        read_payload(r#"{"__honker_task__": {"task": "t", "args": [1, 2], "kwargs": null}}"#)
            .unwrap()
    else {
        panic!("an envelope")
    };
    assert_eq!((c.positional(), c.keywords().unwrap().len()), (2, 0));
    assert_eq!(c.decode::<(i32, i32)>().unwrap(), (1, 2));
}
