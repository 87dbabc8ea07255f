//! `cfg(honker_python)` turns on the tests that read files written by the
//! `honker` Python package: when `HONKER_PYTHON` names an interpreter, or
//! in CI (`CI` set to anything but empty, `0` or `false`). Otherwise they
//! are ignored, with the reason; in CI a missing Python fails them.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(honker_python)");
    println!("cargo::rustc-check-cfg=cfg(honker_postgres)");
    for var in ["HONKER_PYTHON", "HONKER_PG_URL", "CI"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let set = |var: &str| {
        std::env::var(var).is_ok_and(|v| {
            let v = v.trim();
            !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
        })
    };
    if set("HONKER_PYTHON") || set("CI") {
        println!("cargo::rustc-cfg=honker_python");
    }
    // Likewise the tests of the command on a PostgreSQL server.
    if set("HONKER_PG_URL") || set("CI") {
        println!("cargo::rustc-cfg=honker_postgres");
    }
}
