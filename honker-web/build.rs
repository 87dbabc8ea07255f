//! `cfg(honker_browser)` turns on the test that drives the dashboard in a
//! real headless Chromium: when `HONKER_CHROMIUM` names the browser, or in
//! CI (`CI` set to anything but empty, `0` or `false`; `.ci/run` installs
//! Debian's chromium). Otherwise it is ignored, with the reason; in CI a
//! missing browser fails it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(honker_browser)");
    println!("cargo::rustc-check-cfg=cfg(honker_postgres)");
    println!("cargo::rerun-if-env-changed=HONKER_CHROMIUM");
    println!("cargo::rerun-if-env-changed=HONKER_PG_URL");
    println!("cargo::rerun-if-env-changed=CI");
    let on = |var: &str| {
        std::env::var(var).is_ok_and(|v| {
            let v = v.trim();
            !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
        })
    };
    if on("HONKER_CHROMIUM") || on("CI") {
        println!("cargo::rustc-cfg=honker_browser");
    }
    // Likewise the dashboard on a PostgreSQL server (`HONKER_PG_URL`).
    if on("HONKER_PG_URL") || on("CI") {
        println!("cargo::rustc-cfg=honker_postgres");
    }
}
