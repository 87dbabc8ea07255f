//! Turns on `cfg(honker_python)` when the Python interop tests must run:
//! `HONKER_PYTHON` names an interpreter, or `CI` is set (to anything but
//! empty, `0` or `false`). Without it those tests are `ignored` (with the
//! reason), never passed; with it a missing Python fails them.
//!
//! Likewise `cfg(honker_postgres)` for the PostgreSQL tests:
//! `HONKER_PG_URL` names a server, or `CI` is set.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(honker_python)");
    println!("cargo::rustc-check-cfg=cfg(honker_postgres)");
    println!("cargo::rerun-if-env-changed=HONKER_PG_URL");
    println!("cargo::rerun-if-env-changed=HONKER_PYTHON");
    println!("cargo::rerun-if-env-changed=CI");
    let python = std::env::var_os("HONKER_PYTHON").is_some_and(|v| !v.is_empty());
    let ci = std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
    });
    if python || ci {
        println!("cargo::rustc-cfg=honker_python");
    }
    let postgres = std::env::var_os("HONKER_PG_URL").is_some_and(|v| !v.is_empty());
    if postgres || ci {
        println!("cargo::rustc-cfg=honker_postgres");
    }
}
