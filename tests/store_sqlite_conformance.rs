//! The conformance suite on `SqliteEventStore`, on a file and on `:memory:`.

mod support;

mod file {
    use crate::support::sqlite_file_fixture;
    eventsource::conformance_suite!(sqlite_file_fixture);
}

mod memory {
    use crate::support::sqlite_memory_fixture;
    eventsource::conformance_suite!(sqlite_memory_fixture);
}
