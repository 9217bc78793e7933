//! Any text as a TraceQL query (it arrives in `/api/search?q=`): parsing
//! returns a query or an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(query) = signaldb_traceql::parse(text) {
            let _ = signaldb_traceql::select_columns(&query);
            let _ = signaldb_traceql::referenced_fields(&query);
        }
    }
});
