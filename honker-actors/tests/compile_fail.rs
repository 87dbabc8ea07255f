//! `#[job]` rejects wrong uses with a readable error at the right span
//! (the expected messages are in tests/ui/*.stderr).

#[test]
fn job_attribute_errors_are_readable() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
