//! Any bytes as an OTLP/protobuf trace export: decoding may fail, converting
//! to Arrow may refuse, but nothing panics, and what converts converts back
//! with every span.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use signaldb_schema::traces::{arrow_to_otlp, otlp_to_arrow, span_count};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = ExportTraceServiceRequest::decode(data) else {
        return;
    };
    let Ok(batch) = otlp_to_arrow(&request.resource_spans) else {
        return;
    };
    assert_eq!(batch.num_rows(), span_count(&request.resource_spans));
    let back = arrow_to_otlp(&batch).expect("a batch we made converts back");
    assert_eq!(span_count(&back), batch.num_rows());
});
