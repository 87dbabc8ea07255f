//! Turns on `cfg(honker_postgres)` when the PostgreSQL tests must run:
//! `HONKER_PG_URL` names a server, or `CI` is set (to anything but empty,
//! `0` or `false`). Without it those tests are `ignored` (with the
//! reason), never passed; with it a missing server fails them.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(honker_postgres)");
    println!("cargo::rerun-if-env-changed=HONKER_PG_URL");
    println!("cargo::rerun-if-env-changed=CI");
    let url = std::env::var_os("HONKER_PG_URL").is_some_and(|v| !v.is_empty());
    let ci = std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
    });
    if url || ci {
        println!("cargo::rustc-cfg=honker_postgres");
    }
}
