//! trybuild: every misuse of the macros fails to compile with an error on the user's own
//! span, and every accepted form compiles. Bless new `.stderr` files with
//! `TRYBUILD=overwrite cargo test --test compiletest` and review the diff like code.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/fail/*.rs");
    t.pass("tests/ui/*/pass/*.rs");
}
