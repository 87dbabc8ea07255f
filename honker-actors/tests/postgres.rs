//! The conformance suite (`conformance/`), run on the PostgreSQL store:
//! each test in a schema of its own on the server `HONKER_PG_URL` names
//! (`.ci/run` starts a throwaway one). Without that variable, and outside
//! CI, the suite is one ignored test that says so.

#[cfg(honker_postgres)]
mod common;
#[cfg(honker_postgres)]
mod conformance;

/// The store under test.
#[cfg(honker_postgres)]
fn fresh() -> common::Fresh {
    common::postgres()
}

#[test]
#[cfg(not(honker_postgres))]
#[ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one; `source .ci/postgres` does by hand)"]
fn postgres_conformance_suite() {}
