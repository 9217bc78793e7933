use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use ::parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use ::parquet::basic::{Compression, ZstdLevel};
use ::parquet::file::properties::WriterProperties;
use arrow::array::{
    Array, ArrayRef, FixedSizeBinaryArray, Int64Array, RecordBatch, RecordBatchReader, StringArray, UInt32Array,
};
use arrow::compute::{cast, concat_batches, take_record_batch};
use arrow_schema::{DataType, Field, Schema};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::columns;

// ---------------------------------------------------------------- helpers

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

/// Writes `batch` to an in-memory ZSTD Parquet file and reads it back.
fn through_parquet(batch: &RecordBatch, skip_arrow_metadata: bool) -> RecordBatch {
    let mut buf = Vec::new();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(7))
        .build();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(skip_arrow_metadata);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes::Bytes::from(buf), options).unwrap();
    if !skip_arrow_metadata {
        // The file keeps the schema's metadata (record batches read carry none).
        assert_eq!(builder.schema().metadata(), batch.schema().metadata());
    }
    let reader = builder.with_batch_size(5).build().unwrap();
    let read_schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    concat_batches(&read_schema, &batches).unwrap()
}

/// What reading back must reproduce: absent messages become present and
/// empty, fields outside the schema are cleared.
fn normalize_attrs(attrs: &mut [KeyValue]) {
    for kv in attrs {
        kv.key_strindex = 0;
    }
}

/// One `ResourceSpans` per span (normalized), protobuf-encoded, so that
/// requests compare independently of grouping (and NaN compares equal).
fn flatten(request: &[ResourceSpans]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for rs in request {
        let mut resource = rs.resource.clone().unwrap_or_default();
        resource.entity_refs.clear();
        normalize_attrs(&mut resource.attributes);
        for ss in &rs.scope_spans {
            let mut scope = ss.scope.clone().unwrap_or_default();
            normalize_attrs(&mut scope.attributes);
            for span in &ss.spans {
                let mut span = span.clone();
                span.status = Some(span.status.unwrap_or_default());
                normalize_attrs(&mut span.attributes);
                for e in &mut span.events {
                    normalize_attrs(&mut e.attributes);
                }
                for l in &mut span.links {
                    normalize_attrs(&mut l.attributes);
                }
                let one = ResourceSpans {
                    resource: Some(resource.clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(scope.clone()),
                        spans: vec![span],
                        schema_url: ss.schema_url.clone(),
                    }],
                    schema_url: rs.schema_url.clone(),
                };
                out.push(one.encode_to_vec());
            }
        }
    }
    out
}

fn nested_array() -> Value {
    Value::ArrayValue(ArrayValue {
        values: vec![
            AnyValue { value: Some(s("a")) },
            AnyValue {
                value: Some(Value::IntValue(-3)),
            },
            AnyValue { value: None },
            AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![kv("inner", Value::DoubleValue(2.5)), KeyValue::default()],
                })),
            },
            AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values: vec![] })),
            },
        ],
    })
}

fn nested_kvlist() -> Value {
    Value::KvlistValue(KeyValueList {
        values: vec![
            kv("x", Value::BoolValue(false)),
            kv("y", nested_array()),
            KeyValue {
                key: "no value".into(),
                value: None,
                key_strindex: 0,
            },
        ],
    })
}

fn every_kind_of_attribute() -> Vec<KeyValue> {
    vec![
        kv("str", s("hello ✓")),
        kv("empty str", s("")),
        kv("bool", Value::BoolValue(true)),
        kv("int", Value::IntValue(i64::MIN)),
        kv("double", Value::DoubleValue(-0.0)),
        kv("nan", Value::DoubleValue(f64::NAN)),
        kv("bytes", Value::BytesValue(vec![0, 1, 2, 255])),
        kv("empty bytes", Value::BytesValue(vec![])),
        kv("array", nested_array()),
        kv("kvlist", nested_kvlist()),
        kv("strindex", Value::StringValueStrindex(42)),
        KeyValue {
            key: "empty value".into(),
            value: Some(AnyValue { value: None }),
            key_strindex: 0,
        },
        KeyValue {
            key: "absent value".into(),
            value: None,
            key_strindex: 0,
        },
        kv("str", s("duplicate key, kept in order")),
    ]
}

fn span(n: u8, parent: bool) -> Span {
    Span {
        trace_id: vec![n; 16],
        span_id: vec![n, 1, 2, 3, 4, 5, 6, 7],
        trace_state: if n.is_multiple_of(2) {
            "vendor=x,other=y".into()
        } else {
            String::new()
        },
        parent_span_id: if parent { vec![9; 8] } else { Vec::new() },
        flags: 0x301,
        name: format!("span {n}"),
        kind: i32::from(n % 6),
        start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n),
        end_time_unix_nano: 1_700_000_000_500_000_000,
        attributes: if n == 0 {
            every_kind_of_attribute()
        } else {
            vec![kv("n", Value::IntValue(n.into()))]
        },
        dropped_attributes_count: 3,
        events: vec![
            Event {
                time_unix_nano: 1_700_000_000_100_000_000,
                name: "exception".into(),
                attributes: every_kind_of_attribute(),
                dropped_attributes_count: 1,
            },
            Event {
                time_unix_nano: 0,
                name: String::new(),
                attributes: vec![],
                dropped_attributes_count: 0,
            },
        ],
        dropped_events_count: 4,
        links: vec![Link {
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            trace_state: "k=v".into(),
            attributes: vec![kv("link.kind", s("follows")), kv("arr", nested_array())],
            dropped_attributes_count: 2,
            flags: 0x100,
        }],
        dropped_links_count: 5,
        status: Some(Status {
            message: "boom".into(),
            code: 2,
        }),
    }
}

/// A request already grouped the way reading back groups it, with every
/// feature of the schema.
fn full_request() -> Vec<ResourceSpans> {
    let scope = |name: &str, attrs: Vec<KeyValue>| InstrumentationScope {
        name: name.into(),
        version: "1.2.3".into(),
        attributes: attrs,
        dropped_attributes_count: 6,
    };
    vec![
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("checkout")),
                    kv("process.command_args", nested_array()),
                    kv("host.id", Value::BytesValue(vec![1, 2])),
                ],
                dropped_attributes_count: 7,
                entity_refs: vec![],
            }),
            scope_spans: vec![
                ScopeSpans {
                    scope: Some(scope("lib-a", every_kind_of_attribute())),
                    spans: vec![span(0, false), span(1, true)],
                    schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                },
                ScopeSpans {
                    scope: Some(scope("lib-b", vec![])),
                    spans: vec![span(2, true)],
                    schema_url: String::new(),
                },
            ],
            schema_url: "https://opentelemetry.io/schemas/1.20.0".into(),
        },
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::IntValue(5)), kv("k", s("v"))],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_spans: vec![
                ScopeSpans {
                    scope: Some(scope("", vec![])),
                    spans: vec![span(3, true)],
                    schema_url: String::new(),
                },
                ScopeSpans {
                    scope: Some(scope("lib-c", vec![kv("a", s("b"))])),
                    spans: vec![span(4, false), span(5, true), span(6, true)],
                    schema_url: "s".into(),
                },
            ],
            schema_url: String::new(),
        },
    ]
}

fn encoded(request: &[ResourceSpans]) -> Vec<Vec<u8>> {
    request.iter().map(Message::encode_to_vec).collect()
}

// ---------------------------------------------------------------- schema

#[test]
fn schema_is_cached_and_has_metadata() {
    let a = schema();
    assert!(Arc::ptr_eq(&a, &schema()));
    assert_eq!(
        a.metadata().get(columns::SCHEMA_METADATA_KEY).map(String::as_str),
        Some("traces")
    );
    assert_eq!(
        a.metadata()
            .get(columns::SCHEMA_VERSION_METADATA_KEY)
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        a.field_with_name(columns::TRACE_ID).unwrap().data_type(),
        &DataType::FixedSizeBinary(16)
    );
    assert!(!a.field_with_name(columns::TRACE_ID).unwrap().is_nullable());
    assert!(a.field_with_name(columns::PARENT_SPAN_ID).unwrap().is_nullable());
    assert!(a.field_with_name(columns::SERVICE_NAME).unwrap().is_nullable());
    assert_eq!(a.fields().len(), 27 + columns::DEDICATED.len());
}

/// Each dedicated column holds the span's first attribute with its key when
/// of the column's type, and null otherwise; the attribute list is intact.
#[test]
fn dedicated_columns_copy_typed_span_attributes() {
    let with = |attributes: Vec<KeyValue>| Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        attributes,
        ..Default::default()
    };
    let spans = vec![
        with(vec![
            kv("http.request.method", s("GET")),
            kv("http.response.status_code", Value::IntValue(500)),
            kv("http.route", s("/a")),
            kv("db.system", s("postgresql")),
            kv("rpc.service", s("svc.Foo")),
        ]),
        // Wrong types: null; a double is a number.
        with(vec![
            kv("http.response.status_code", s("500")),
            kv("http.request.method", Value::IntValue(1)),
        ]),
        with(vec![kv("http.response.status_code", Value::DoubleValue(404.0))]),
        with(vec![kv("http.response.status_code", Value::DoubleValue(f64::NAN))]),
        // Repeated key: the first.
        with(vec![kv("http.route", s("/first")), kv("http.route", s("/second"))]),
        with(vec![]),
    ];
    let batch = otlp_to_arrow(&[ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("http.route", s("/resource"))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: spans.clone(),
            ..Default::default()
        }],
        ..Default::default()
    }])
    .unwrap();
    let strings = |name: &str| -> Vec<Option<String>> {
        let a = batch
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        a.iter().map(|v| v.map(str::to_owned)).collect()
    };
    let o = |v: &str| Some(v.to_owned());
    assert_eq!(
        strings(columns::HTTP_REQUEST_METHOD),
        [o("GET"), None, None, None, None, None]
    );
    assert_eq!(
        strings(columns::HTTP_ROUTE),
        [o("/a"), None, None, None, o("/first"), None],
        "span attributes only, first wins"
    );
    assert_eq!(
        strings(columns::DB_SYSTEM),
        [o("postgresql"), None, None, None, None, None]
    );
    assert_eq!(
        strings(columns::RPC_SERVICE),
        [o("svc.Foo"), None, None, None, None, None]
    );
    let codes = batch
        .column_by_name(columns::HTTP_RESPONSE_STATUS_CODE)
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    assert_eq!(
        codes.iter().collect::<Vec<_>>(),
        [Some(500.0), None, Some(404.0), None, None, None]
    );
    // The attributes themselves come back unchanged.
    let back = arrow_to_otlp(&batch).unwrap();
    // (Compared as text: NaN is not equal to itself.)
    let attributes = |spans: &[Span]| format!("{:?}", spans.iter().map(|s| &s.attributes).collect::<Vec<_>>());
    assert!(attributes(&back[0].scope_spans[0].spans) == attributes(&spans));
}

#[test]
fn error_is_send_sync_static() {
    fn check<T: Send + Sync + 'static + std::error::Error>() {}
    check::<Error>();
}

// ---------------------------------------------------------------- round trips

#[test]
fn full_request_round_trips_exactly_through_arrow_and_parquet() {
    let request = full_request();
    let batch = otlp_to_arrow(&request).unwrap();
    assert_eq!(batch.num_rows(), span_count(&request));
    assert_eq!(batch.num_rows(), 7);
    assert_eq!(batch.schema(), schema());

    assert_eq!(encoded(&arrow_to_otlp(&batch).unwrap()), encoded(&request));

    let read = through_parquet(&batch, false);
    assert_eq!(read.schema().fields(), schema().fields());
    assert_eq!(encoded(&arrow_to_otlp(&read).unwrap()), encoded(&request));

    // Without the embedded Arrow schema Parquet gives other list item names
    // and the like; still readable.
    let read = through_parquet(&batch, true);
    assert_eq!(encoded(&arrow_to_otlp(&read).unwrap()), encoded(&request));
}

#[test]
fn derived_and_nullable_columns() {
    let batch = otlp_to_arrow(&full_request()).unwrap();
    let service: &StringArray = batch
        .column_by_name(columns::SERVICE_NAME)
        .unwrap()
        .as_any()
        .downcast_ref()
        .unwrap();
    // "checkout" for resource 0; resource 1's service.name is an int.
    let got: Vec<Option<&str>> = service.iter().collect();
    assert_eq!(
        got,
        [
            Some("checkout"),
            Some("checkout"),
            Some("checkout"),
            None,
            None,
            None,
            None
        ]
    );
    let parent: &FixedSizeBinaryArray = batch
        .column_by_name(columns::PARENT_SPAN_ID)
        .unwrap()
        .as_any()
        .downcast_ref()
        .unwrap();
    assert!(parent.is_null(0));
    assert_eq!(parent.value(1), &[9; 8]);
    let duration: &Int64Array = batch
        .column_by_name(columns::DURATION_NANO)
        .unwrap()
        .as_any()
        .downcast_ref()
        .unwrap();
    assert_eq!(duration.value(0), 500_000_000);
}

#[test]
fn duration_is_negative_when_end_precedes_start_and_times_are_kept() {
    let mut request = full_request();
    let sp = &mut request[0].scope_spans[0].spans[0];
    sp.start_time_unix_nano = i64::MAX as u64;
    sp.end_time_unix_nano = 0;
    let batch = otlp_to_arrow(&request).unwrap();
    let duration: &Int64Array = batch
        .column_by_name(columns::DURATION_NANO)
        .unwrap()
        .as_any()
        .downcast_ref()
        .unwrap();
    assert_eq!(duration.value(0), -i64::MAX);
    assert_eq!(encoded(&arrow_to_otlp(&batch).unwrap()), encoded(&request));
}

#[test]
fn absent_messages_read_back_as_empty_ones() {
    let mut sp = span(1, true);
    sp.status = None;
    let request = vec![ResourceSpans {
        resource: None,
        scope_spans: vec![
            ScopeSpans {
                scope: None,
                spans: vec![sp],
                schema_url: String::new(),
            },
            ScopeSpans {
                scope: None,
                spans: vec![],
                schema_url: "empty scopes vanish".into(),
            },
        ],
        schema_url: String::new(),
    }];
    let back = arrow_to_otlp(&otlp_to_arrow(&request).unwrap()).unwrap();
    assert_eq!(flatten(&back), flatten(&request));
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].resource, Some(Resource::default()));
    assert_eq!(back[0].scope_spans.len(), 1);
    assert_eq!(back[0].scope_spans[0].scope, Some(InstrumentationScope::default()));
    assert_eq!(back[0].scope_spans[0].spans[0].status, Some(Status::default()));
}

#[test]
fn empty_input_gives_empty_batch() {
    let batch = otlp_to_arrow(&[]).unwrap();
    assert_eq!(batch.num_rows(), 0);
    assert_eq!(batch.schema(), schema());
    assert!(arrow_to_otlp(&batch).unwrap().is_empty());
    assert!(arrow_to_otlp(&RecordBatch::new_empty(schema())).unwrap().is_empty());
}

#[test]
fn concatenated_and_sorted_batches_convert_back() {
    let request = full_request();
    let a = otlp_to_arrow(&request).unwrap();
    let b = otlp_to_arrow(&request[1..]).unwrap();
    let both = concat_batches(&schema(), [&a, &b]).unwrap();
    assert_eq!(both.num_rows(), 11);
    let mut expected = flatten(&request);
    expected.extend(flatten(&request[1..]));
    assert_eq!(flatten(&arrow_to_otlp(&both).unwrap()), expected);

    // Reverse the rows with `take`, and slice.
    let indices = arrow::array::UInt32Array::from_iter_values((0..11u32).rev());
    let reversed = take_record_batch(&both, &indices).unwrap();
    expected.reverse();
    assert_eq!(flatten(&arrow_to_otlp(&reversed).unwrap()), expected);
    let sliced = reversed.slice(3, 5);
    assert_eq!(flatten(&arrow_to_otlp(&sliced).unwrap()), expected[3..8]);
}

#[test]
fn grouping_merges_only_consecutive_equal_resources_and_scopes() {
    let request = full_request();
    let batch = otlp_to_arrow(&request).unwrap();
    // Rows 0..3 share resource 0: read back as one ResourceSpans with two scopes.
    let back = arrow_to_otlp(&batch.slice(0, 3)).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].scope_spans.len(), 2);
    assert_eq!(back[0].scope_spans[0].spans.len(), 2);
    // Interleaved resources are not merged.
    let indices = arrow::array::UInt32Array::from(vec![0, 3, 1]);
    let back = arrow_to_otlp(&take_record_batch(&batch, &indices).unwrap()).unwrap();
    assert_eq!(back.len(), 3);
}

/// Casts every column of `batch` that holds `from` (at any depth) to `to`.
fn recast(batch: &RecordBatch, map: &dyn Fn(&DataType) -> DataType) -> RecordBatch {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let ty = map(field.data_type());
        columns.push(cast(column, &ty).unwrap());
        fields.push(Field::new(field.name(), ty, true));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn to_views(ty: &DataType) -> DataType {
    match ty {
        DataType::Utf8 => DataType::Utf8View,
        DataType::Binary => DataType::BinaryView,
        DataType::List(f) => DataType::LargeList(Arc::new(Field::new("element", to_views(f.data_type()), true))),
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Field::new(f.name(), to_views(f.data_type()), true))
                .collect(),
        ),
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, Some("+00:00".into())),
        other => other.clone(),
    }
}

#[test]
fn other_representations_of_the_types_are_read() {
    let request = full_request();
    let batch = otlp_to_arrow(&request).unwrap();
    let views = recast(&batch, &to_views);
    assert_eq!(
        views.schema().field_with_name(columns::NAME).unwrap().data_type(),
        &DataType::Utf8View
    );
    assert_eq!(encoded(&arrow_to_otlp(&views).unwrap()), encoded(&request));

    let large = recast(&batch, &|ty| match ty {
        DataType::Utf8 => DataType::LargeUtf8,
        DataType::Binary => DataType::LargeBinary,
        other => other.clone(),
    });
    assert_eq!(encoded(&arrow_to_otlp(&large).unwrap()), encoded(&request));

    // Projected: derived columns are not needed, extra columns are ignored.
    let mut projected = batch.clone();
    for name in [columns::SERVICE_NAME, columns::DURATION_NANO] {
        let i = projected.schema().index_of(name).unwrap();
        projected.remove_column(i);
    }
    assert_eq!(encoded(&arrow_to_otlp(&projected).unwrap()), encoded(&request));
}

// ---------------------------------------------------------------- partitions

#[test]
fn partitioned_conversion_puts_every_span_in_its_partition() {
    let request = full_request();
    let part = |tid: &[u8]| usize::from(tid[0]) % 3;
    let batches = otlp_to_arrow_partitioned(&request, 4, part).unwrap();
    assert_eq!(batches.len(), 4);
    assert_eq!(batches[3].num_rows(), 0);
    assert_eq!(batches[3].schema(), schema());
    let mut total = 0;
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(b.schema(), schema());
        let ids: &FixedSizeBinaryArray = b
            .column_by_name(columns::TRACE_ID)
            .unwrap()
            .as_any()
            .downcast_ref()
            .unwrap();
        for row in 0..b.num_rows() {
            assert_eq!(part(ids.value(row)), i);
        }
        total += b.num_rows();
    }
    assert_eq!(total, span_count(&request));
    // Each partition holds its spans, in input order, unchanged.
    for (i, b) in batches.iter().enumerate() {
        let expected: Vec<Vec<u8>> = flatten(&request)
            .into_iter()
            .zip(request.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans))
            .filter(|(_, sp)| part(&sp.trace_id) == i)
            .map(|(e, _)| e)
            .collect();
        assert_eq!(flatten(&arrow_to_otlp(b).unwrap()), expected);
    }
}

#[test]
fn partition_out_of_range_is_an_error() {
    let err = otlp_to_arrow_partitioned(&full_request(), 2, |_| 2).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PartitionOutOfRange {
                partition: 2,
                partitions: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(otlp_to_arrow_partitioned(&full_request(), 0, |_| 0).is_err());
    assert!(otlp_to_arrow_partitioned(&[], 0, |_| 0).unwrap().is_empty());
}

// ---------------------------------------------------------------- errors

fn error_of(mutate: impl FnOnce(&mut Span)) -> String {
    let mut request = full_request();
    mutate(&mut request[1].scope_spans[1].spans[2]);
    otlp_to_arrow(&request).unwrap_err().to_string()
}

#[test]
fn bad_spans_give_errors_naming_the_field() {
    assert_eq!(
        error_of(|s| s.trace_id = vec![1; 5]),
        "span 2 of scope 1 of resource 1: trace_id is 5 bytes, expected 16"
    );
    assert_eq!(
        error_of(|s| s.span_id = vec![]),
        "span 2 of scope 1 of resource 1: span_id is 0 bytes, expected 8"
    );
    assert_eq!(
        error_of(|s| s.parent_span_id = vec![1; 16]),
        "span 2 of scope 1 of resource 1: parent_span_id is 16 bytes, expected 8"
    );
    assert_eq!(
        error_of(|s| s.start_time_unix_nano = u64::MAX),
        "span 2 of scope 1 of resource 1: start_time_unix_nano is 18446744073709551615, which exceeds i64::MAX"
    );
    assert_eq!(
        error_of(|s| s.end_time_unix_nano = i64::MAX as u64 + 1),
        "span 2 of scope 1 of resource 1: end_time_unix_nano is 9223372036854775808, which exceeds i64::MAX"
    );
    assert_eq!(
        error_of(|s| s.events[1].time_unix_nano = u64::MAX),
        "span 2 of scope 1 of resource 1: events[1].time_unix_nano is 18446744073709551615, which exceeds i64::MAX"
    );
    assert_eq!(
        error_of(|s| s.links[0].trace_id = vec![1; 8]),
        "span 2 of scope 1 of resource 1: links[0].trace_id is 8 bytes, expected 16"
    );
    assert_eq!(
        error_of(|s| s.links[0].span_id = vec![1; 16]),
        "span 2 of scope 1 of resource 1: links[0].span_id is 16 bytes, expected 8"
    );
    // i64::MAX itself is fine.
    let mut request = full_request();
    request[0].scope_spans[0].spans[0].end_time_unix_nano = i64::MAX as u64;
    assert_eq!(
        encoded(&arrow_to_otlp(&otlp_to_arrow(&request).unwrap()).unwrap()),
        encoded(&request)
    );
}

#[test]
fn unreadable_batches_give_errors_naming_the_column() {
    let batch = otlp_to_arrow(&full_request()).unwrap();

    let mut missing = batch.clone();
    missing.remove_column(schema().index_of(columns::SPAN_ID).unwrap());
    assert_eq!(
        arrow_to_otlp(&missing).unwrap_err().to_string(),
        "column `span_id` is missing"
    );

    let i = schema().index_of(columns::LINKS).unwrap();
    let mut fields: Vec<Field> = schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[i] = Field::new(columns::LINKS, DataType::Int64, false);
    let mut columns_: Vec<ArrayRef> = batch.columns().to_vec();
    columns_[i] = Arc::new(Int64Array::from(vec![0; 7]));
    let wrong = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns_).unwrap();
    let err = arrow_to_otlp(&wrong).unwrap_err().to_string();
    assert!(
        err.starts_with("column `links` has type Int64, expected List("),
        "{err}"
    );

    // An unknown attribute type code.
    let mut request = full_request();
    request.truncate(1);
    let batch = otlp_to_arrow(&request).unwrap();
    let attrs = batch.column_by_name(columns::SCOPE_ATTRIBUTES).unwrap();
    let list = attrs.as_any().downcast_ref::<arrow::array::ListArray>().unwrap();
    let items = list
        .values()
        .as_any()
        .downcast_ref::<arrow::array::StructArray>()
        .unwrap();
    let mut children = items.columns().to_vec();
    let n = children[1].len();
    children[1] = Arc::new(arrow::array::UInt8Array::from(vec![99; n]));
    let items = arrow::array::StructArray::try_new(items.fields().clone(), children, None).unwrap();
    let list = arrow::array::ListArray::try_new(
        Arc::clone(&crate::attributes::ITEM),
        list.offsets().clone(),
        Arc::new(items),
        None,
    )
    .unwrap();
    let mut cols = batch.columns().to_vec();
    cols[schema().index_of(columns::SCOPE_ATTRIBUTES).unwrap()] = Arc::new(list);
    let bad = RecordBatch::try_new(schema(), cols).unwrap();
    assert_eq!(
        arrow_to_otlp(&bad).unwrap_err().to_string(),
        "row 0: column `scope_attributes.item.type`: attribute 0: unknown type 99"
    );
}

#[test]
fn dropped_counts_are_kept_per_column() {
    let batch = otlp_to_arrow(&full_request()).unwrap();
    let get = |name: &str| -> Vec<u32> {
        let a: &UInt32Array = batch.column_by_name(name).unwrap().as_any().downcast_ref().unwrap();
        a.values().to_vec()
    };
    assert_eq!(get(columns::DROPPED_ATTRIBUTES_COUNT), [3; 7]);
    assert_eq!(get(columns::DROPPED_EVENTS_COUNT), [4; 7]);
    assert_eq!(get(columns::DROPPED_LINKS_COUNT), [5; 7]);
    assert_eq!(get(columns::RESOURCE_DROPPED_ATTRIBUTES_COUNT), [7, 7, 7, 0, 0, 0, 0]);
    assert_eq!(get(columns::SCOPE_DROPPED_ATTRIBUTES_COUNT), [6; 7]);
}

// ---------------------------------------------------------------- proptest

fn arb_any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        Just(None),
        ".{0,6}".prop_map(|s| Some(Value::StringValue(s))),
        any::<bool>().prop_map(|b| Some(Value::BoolValue(b))),
        any::<i64>().prop_map(|i| Some(Value::IntValue(i))),
        any::<f64>().prop_map(|d| Some(Value::DoubleValue(d))),
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(|b| Some(Value::BytesValue(b))),
        any::<i32>().prop_map(|i| Some(Value::StringValueStrindex(i))),
    ]
    .prop_map(|value| AnyValue { value });
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values }))
            }),
            proptest::collection::vec(("[a-z.]{0,4}", proptest::option::of(inner), any::<i32>()), 0..4).prop_map(
                |kvs| AnyValue {
                    value: Some(Value::KvlistValue(KeyValueList {
                        values: kvs
                            .into_iter()
                            .map(|(key, value, key_strindex)| KeyValue {
                                key,
                                value,
                                key_strindex
                            })
                            .collect(),
                    })),
                }
            ),
        ]
    })
}

fn arb_attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(
        ("[a-z.]{0,6}", proptest::option::of(arb_any_value())).prop_map(|(key, value)| KeyValue {
            key,
            value,
            key_strindex: 0,
        }),
        0..4,
    )
}

fn arb_bytes(len: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), len)
}

fn arb_time() -> impl Strategy<Value = u64> {
    prop_oneof![0..=i64::MAX as u64, Just(0), Just(i64::MAX as u64)]
}

fn arb_event() -> impl Strategy<Value = Event> {
    (arb_time(), ".{0,6}", arb_attributes(), any::<u32>()).prop_map(|(time_unix_nano, name, attributes, d)| Event {
        time_unix_nano,
        name,
        attributes,
        dropped_attributes_count: d,
    })
}

fn arb_link() -> impl Strategy<Value = Link> {
    (
        arb_bytes(16),
        arb_bytes(8),
        ".{0,6}",
        arb_attributes(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| Link {
                trace_id,
                span_id,
                trace_state,
                attributes,
                dropped_attributes_count,
                flags,
            },
        )
}

fn arb_span() -> impl Strategy<Value = Span> {
    (
        (
            arb_bytes(16),
            arb_bytes(8),
            prop_oneof![Just(vec![]), arb_bytes(8)],
            ".{0,6}",
            any::<u32>(),
            ".{0,6}",
        ),
        (any::<i32>(), arb_time(), arb_time(), arb_attributes(), any::<u32>()),
        (
            proptest::collection::vec(arb_event(), 0..3),
            any::<u32>(),
            proptest::collection::vec(arb_link(), 0..3),
        ),
        (any::<u32>(), proptest::option::of((".{0,6}", any::<i32>()))),
    )
        .prop_map(|(ids, body, children, tail)| {
            let (trace_id, span_id, parent_span_id, trace_state, flags, name) = ids;
            let (kind, start_time_unix_nano, end_time_unix_nano, attributes, dropped_attributes_count) = body;
            let (events, dropped_events_count, links) = children;
            let (dropped_links_count, status) = tail;
            Span {
                trace_id,
                span_id,
                trace_state,
                parent_span_id,
                flags,
                name,
                kind,
                start_time_unix_nano,
                end_time_unix_nano,
                attributes,
                dropped_attributes_count,
                events,
                dropped_events_count,
                links,
                dropped_links_count,
                status: status.map(|(message, code)| Status { message, code }),
            }
        })
}

fn arb_scope_spans() -> impl Strategy<Value = ScopeSpans> {
    (
        proptest::option::of((".{0,4}", ".{0,4}", arb_attributes(), any::<u32>())),
        proptest::collection::vec(arb_span(), 0..4),
        ".{0,4}",
    )
        .prop_map(|(scope, spans, schema_url)| ScopeSpans {
            scope: scope.map(
                |(name, version, attributes, dropped_attributes_count)| InstrumentationScope {
                    name,
                    version,
                    attributes,
                    dropped_attributes_count,
                },
            ),
            spans,
            schema_url,
        })
}

fn arb_request() -> impl Strategy<Value = Vec<ResourceSpans>> {
    let resource = (
        proptest::option::of((arb_attributes(), any::<u32>())),
        proptest::collection::vec(arb_scope_spans(), 0..3),
        ".{0,4}",
    )
        .prop_map(|(resource, scope_spans, schema_url)| ResourceSpans {
            resource: resource.map(|(attributes, dropped_attributes_count)| Resource {
                attributes,
                dropped_attributes_count,
                entity_refs: vec![],
            }),
            scope_spans,
            schema_url,
        });
    proptest::collection::vec(resource, 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_requests_round_trip(request in arb_request()) {
        let expected = flatten(&request);
        let batch = otlp_to_arrow(&request).unwrap();
        prop_assert_eq!(batch.num_rows(), span_count(&request));
        let back = arrow_to_otlp(&batch).unwrap();
        prop_assert!(flatten(&back) == expected, "arrow round trip differs:\n{:?}\n{:?}", request, back);

        let read = through_parquet(&batch, false);
        let back = arrow_to_otlp(&read).unwrap();
        prop_assert!(flatten(&back) == expected, "parquet round trip differs:\n{:?}\n{:?}", request, back);
    }

    #[test]
    fn arbitrary_requests_partition(request in arb_request(), partitions in 1usize..5) {
        let part = |tid: &[u8]| usize::from(tid[3]) % partitions;
        let batches = otlp_to_arrow_partitioned(&request, partitions, part).unwrap();
        prop_assert_eq!(batches.len(), partitions);
        let spans: Vec<&Span> = request.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans).collect();
        let flat = flatten(&request);
        for (i, b) in batches.iter().enumerate() {
            let expected: Vec<Vec<u8>> = flat
                .iter()
                .zip(&spans)
                .filter(|(_, sp)| part(&sp.trace_id) == i)
                .map(|(e, _)| e.clone())
                .collect();
            prop_assert!(flatten(&arrow_to_otlp(b).unwrap()) == expected);
        }
    }
}
