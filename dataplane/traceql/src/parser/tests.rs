use super::*;
use crate::Query;

fn q(text: &str) -> Query {
    match Query::parse(text) {
        Ok(q) => q,
        Err(e) => panic!("{text}: {e}"),
    }
}

/// Parses, checks that printing and re-parsing gives the same tree, and
/// returns the printed form.
fn show(text: &str) -> String {
    let query = q(text);
    let printed = query.to_string();
    assert_eq!(q(&printed), query, "{text} printed as {printed}");
    printed
}

fn err(text: &str) -> QueryError {
    match Query::parse(text) {
        Ok(q) => panic!("{text} parsed as {q}"),
        Err(e) => e,
    }
}

fn parse_err(text: &str) -> (u32, u32, String) {
    match err(text) {
        QueryError::Parse(e) => (e.line, e.col, e.message),
        other => panic!("{text}: expected a parse error, got {other:?}"),
    }
}

fn invalid_msg(text: &str) -> String {
    match err(text) {
        QueryError::Invalid(e) => e.message,
        other => panic!("{text}: expected a type error, got {other:?}"),
    }
}

fn unsupported_msg(text: &str) -> String {
    match err(text) {
        e @ QueryError::Unsupported(_) => e.to_string(),
        other => panic!("{text}: expected unsupported, got {other:?}"),
    }
}

fn attr(scope: AttributeScope, name: &str) -> FieldRef {
    FieldRef::Attribute(AttributeRef::new(scope, name))
}

fn filter_expr(text: &str) -> FieldExpr {
    match q(text).expr() {
        SpansetExpr::Filter(Some(e)) => e.clone(),
        other => panic!("{text}: not a single filter: {other:?}"),
    }
}

fn comparison(text: &str) -> Comparison {
    match filter_expr(text) {
        FieldExpr::Compare(c) => c,
        other => panic!("{text}: not a comparison: {other:?}"),
    }
}

#[test]
fn empty_filter() {
    assert_eq!(q("{}").expr(), &SpansetExpr::Filter(None));
    assert_eq!(q(" {  } ").expr(), &SpansetExpr::Filter(None));
    assert_eq!(show("{}"), "{ }");
}

#[test]
fn field_operator_precedence() {
    assert_eq!(show("{ .a = 1 && .b = 2 || .c = 3 }"), "{ .a = 1 && .b = 2 || .c = 3 }");
    assert!(
        matches!(filter_expr("{ .a = 1 && .b = 2 || .c = 3 }"), FieldExpr::Or(l, _) if matches!(*l, FieldExpr::And(..)))
    );
    assert!(
        matches!(filter_expr("{ .a = 1 || .b = 2 && .c = 3 }"), FieldExpr::Or(_, r) if matches!(*r, FieldExpr::And(..)))
    );
    assert_eq!(
        show("{ (.a = 1 || .b = 2) && .c = 3 }"),
        "{ (.a = 1 || .b = 2) && .c = 3 }"
    );
    assert_eq!(show("{ !(.a = 1) && !.b }"), "{ !(.a = 1) && !(.b = true) }");
    assert_eq!(show("{ !!(name = \"x\") }"), "{ !(!(name = \"x\")) }");
    // Right-nested groups keep their parentheses.
    assert_eq!(
        show("{ .a = 1 && (.b = 2 && .c = 3) }"),
        "{ .a = 1 && (.b = 2 && .c = 3) }"
    );
}

#[test]
fn spanset_operator_precedence() {
    let e = q("{ .a = 1 } || { .b = 2 } && { .c = 3 }");
    assert!(matches!(e.expr(), SpansetExpr::Or(_, r) if matches!(**r, SpansetExpr::And(..))));
    let e = q("{ .a = 1 } && { .b = 2 } | count() > 1");
    assert!(
        matches!(e.expr(), SpansetExpr::Pipeline(input, stages) if matches!(**input, SpansetExpr::And(..)) && stages.len() == 1)
    );
    assert_eq!(
        show("({ .a = 1 } | count() > 1) && { .b = 2 }"),
        "({ .a = 1 } | count() > 1) && { .b = 2 }"
    );
    assert_eq!(
        show("({ .a = 1 } || { .b = 2 }) && { }"),
        "({ .a = 1 } || { .b = 2 }) && { }"
    );
}

#[test]
fn literals() {
    let rhs = |text: &str| comparison(&format!("{{ .x = {text} }}")).rhs;
    let lit = |l: Literal| Operand::Literal(l);
    assert_eq!(rhs(r#""a\"b\\c\n""#), lit(Literal::String("a\"b\\c\n".into())));
    assert_eq!(rhs(r"`a\d`"), lit(Literal::String(r"a\d".into())));
    assert_eq!(rhs("42"), lit(Literal::Int(42)));
    assert_eq!(rhs("-42"), lit(Literal::Int(-42)));
    assert_eq!(rhs("- 42"), lit(Literal::Int(-42)));
    assert_eq!(rhs("1.25"), lit(Literal::Float(1.25)));
    assert_eq!(rhs("-0.5"), lit(Literal::Float(-0.5)));
    assert_eq!(rhs("1e3"), lit(Literal::Float(1000.0)));
    assert_eq!(rhs("minInt"), lit(Literal::Int(i64::MIN)));
    assert_eq!(rhs("maxInt"), lit(Literal::Int(i64::MAX)));
    assert_eq!(rhs("true"), lit(Literal::Bool(true)));
    assert_eq!(rhs("false"), lit(Literal::Bool(false)));
    for (text, nanos) in [
        ("7ns", 7),
        ("3us", 3_000),
        ("3µs", 3_000),
        ("100ms", 100_000_000),
        ("1.5s", 1_500_000_000),
        ("2m", 120_000_000_000),
        ("1h", 3_600_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("-5s", -5_000_000_000),
    ] {
        assert_eq!(rhs(text), lit(Literal::Duration(nanos)), "{text}");
    }
    for (text, status) in [
        ("ok", StatusCode::Ok),
        ("error", StatusCode::Error),
        ("unset", StatusCode::Unset),
    ] {
        assert_eq!(
            comparison(&format!("{{ status = {text} }}")).rhs,
            lit(Literal::Status(status))
        );
    }
    for (text, kind) in [
        ("unspecified", SpanKind::Unspecified),
        ("internal", SpanKind::Internal),
        ("server", SpanKind::Server),
        ("client", SpanKind::Client),
        ("producer", SpanKind::Producer),
        ("consumer", SpanKind::Consumer),
    ] {
        assert_eq!(
            comparison(&format!("{{ kind = {text} }}")).rhs,
            lit(Literal::Kind(kind))
        );
    }
    assert_eq!(
        filter_expr("{ .x = nil }"),
        FieldExpr::Exists {
            field: attr(AttributeScope::Unscoped, "x"),
            present: false
        }
    );
    assert_eq!(
        filter_expr("{ nil != span.x }"),
        FieldExpr::Exists {
            field: attr(AttributeScope::Span, "x"),
            present: true
        }
    );
    assert_eq!(
        show("{ .x = maxInt && .y = minInt }"),
        "{ .x = 9223372036854775807 && .y = minInt }"
    );
    assert_eq!(show("{ .d = 1500ms || .e = -0.5 }"), "{ .d = 1500ms || .e = -0.5 }");
}

#[test]
fn intrinsics() {
    let lhs = |text: &str| comparison(text).lhs;
    let i = |i: Intrinsic| Operand::Field(FieldRef::Intrinsic(i));
    assert_eq!(lhs(r#"{ name = "a" }"#), i(Intrinsic::Name));
    assert_eq!(lhs(r#"{ span:name = "a" }"#), i(Intrinsic::Name));
    assert_eq!(lhs("{ status = ok }"), i(Intrinsic::Status));
    assert_eq!(lhs("{ span:status = ok }"), i(Intrinsic::Status));
    assert_eq!(lhs(r#"{ statusMessage = "a" }"#), i(Intrinsic::StatusMessage));
    assert_eq!(lhs(r#"{ span:statusMessage = "a" }"#), i(Intrinsic::StatusMessage));
    assert_eq!(lhs("{ duration > 1s }"), i(Intrinsic::Duration));
    assert_eq!(lhs("{ span:duration > 1s }"), i(Intrinsic::Duration));
    assert_eq!(lhs("{ kind = server }"), i(Intrinsic::Kind));
    assert_eq!(lhs("{ span:kind = server }"), i(Intrinsic::Kind));
    assert_eq!(lhs(r#"{ rootName = "a" }"#), i(Intrinsic::RootName));
    assert_eq!(lhs(r#"{ trace:rootName = "a" }"#), i(Intrinsic::RootName));
    assert_eq!(lhs(r#"{ rootServiceName = "a" }"#), i(Intrinsic::RootServiceName));
    assert_eq!(lhs(r#"{ trace:rootService = "a" }"#), i(Intrinsic::RootServiceName));
    assert_eq!(lhs("{ traceDuration > 1s }"), i(Intrinsic::TraceDuration));
    assert_eq!(lhs("{ trace:duration > 1s }"), i(Intrinsic::TraceDuration));
}

#[test]
fn attributes() {
    let lhs = |text: &str| comparison(text).lhs;
    let a = |s: AttributeScope, n: &str| Operand::Field(attr(s, n));
    assert_eq!(
        lhs("{ span.http.method = `GET` }"),
        a(AttributeScope::Span, "http.method")
    );
    assert_eq!(
        lhs("{ resource.service.name = `x` }"),
        a(AttributeScope::Resource, "service.name")
    );
    assert_eq!(
        lhs("{ .http.method = `GET` }"),
        a(AttributeScope::Unscoped, "http.method")
    );
    assert_eq!(lhs(r#"{ span."http.url" = `x` }"#), a(AttributeScope::Span, "http.url"));
    assert_eq!(
        lhs(r#"{ span.attribute."name with space" = `x` }"#),
        a(AttributeScope::Span, "attribute.name with space")
    );
    assert_eq!(lhs("{ .name = `x` }"), a(AttributeScope::Unscoped, "name"));
    assert_eq!(lhs("{ span.status=`x` }"), a(AttributeScope::Span, "status"));
    assert_eq!(show(r#"{ span."a b" = 1 }"#), r#"{ span."a b" = 1 }"#);
    // A bare attribute is `= true`.
    assert_eq!(show("{ span.cache.hit }"), "{ span.cache.hit = true }");
    assert_eq!(
        show("{ .cache.hit || status = error }"),
        "{ .cache.hit = true || status = error }"
    );
}

#[test]
fn literal_comparisons_are_normalized_or_folded() {
    assert_eq!(show("{ 200 <= span.x }"), "{ span.x >= 200 }");
    assert_eq!(show("{ \"a\" = name }"), "{ name = \"a\" }");
    assert_eq!(filter_expr("{ 1 = 1 }"), FieldExpr::Bool(true));
    assert_eq!(filter_expr("{ 1 < 1.5 }"), FieldExpr::Bool(true));
    assert_eq!(filter_expr("{ \"abc\" =~ \"a.*\" }"), FieldExpr::Bool(true));
    assert_eq!(filter_expr("{ \"abc\" =~ \"b\" }"), FieldExpr::Bool(false));
    assert_eq!(filter_expr("{ true }"), FieldExpr::Bool(true));
    assert_eq!(filter_expr("{ nil = nil }"), FieldExpr::Bool(true));
    assert_eq!(filter_expr("{ 1 = nil }"), FieldExpr::Bool(false));
}

#[test]
fn type_checks_accept() {
    for text in [
        "{ .a = 1.5 }",
        "{ span.a > 1 }",
        "{ duration > 100 }",
        "{ duration > 1.5 }",
        "{ traceDuration >= 1s }",
        "{ name > \"a\" }",
        "{ .a = .b }",
        "{ name = .b }",
        "{ .a =~ \"x\" }",
        "{ name !~ \"x\" }",
        "{ status != error }",
        "{ kind = .k }",
        "{ } | count() > 1",
        "{ } | count() >= 1.5",
        "{ } | avg(duration) > 20ms",
        "{ } | max(span.bytes) > 10",
        "{ } | min(traceDuration) < 1s",
        "{ } | sum(.x) = 3",
        "{ } | select(span.a, resource.b, .c, name, status)",
    ] {
        show(text);
    }
}

#[test]
fn type_errors() {
    assert_eq!(
        invalid_msg("{ duration > \"abc\" }"),
        "binary operations must operate on the same type: duration > \"abc\""
    );
    assert_eq!(
        invalid_msg("{ status = 3 }"),
        "binary operations must operate on the same type: status = 3"
    );
    assert_eq!(
        invalid_msg("{ kind = error }"),
        "binary operations must operate on the same type: kind = error"
    );
    assert_eq!(
        invalid_msg("{ name = 1 }"),
        "binary operations must operate on the same type: name = 1"
    );
    assert_eq!(
        invalid_msg("{ .a =~ 1 }"),
        "illegal operation for the given types: .a =~ 1"
    );
    assert_eq!(
        invalid_msg("{ duration =~ \"1s\" }"),
        "binary operations must operate on the same type: duration =~ \"1s\""
    );
    assert_eq!(
        invalid_msg("{ kind > server }"),
        "illegal operation for the given types: kind > server"
    );
    assert_eq!(
        invalid_msg("{ .a > true }"),
        "illegal operation for the given types: .a > true"
    );
    assert_eq!(
        invalid_msg("{ .a > nil }"),
        "illegal operation for the given types: .a > nil"
    );
    assert_eq!(
        invalid_msg("{ duration }"),
        "span filter field expressions must resolve to a boolean: duration"
    );
    assert_eq!(
        invalid_msg("{ 3 }"),
        "span filter field expressions must resolve to a boolean: 3"
    );
    assert!(invalid_msg("{ .foo && 3 }").starts_with("illegal operation for the given types"));
    assert!(invalid_msg("{ !name }").starts_with("illegal operation for the given types"));
    assert_eq!(
        invalid_msg("{ } | avg(name) > 1"),
        "aggregate field expressions must resolve to a number type: avg(name)"
    );
    assert_eq!(
        invalid_msg("{ } | count() > \"a\""),
        "binary operations must operate on the same type: count() > \"a\""
    );
    assert!(invalid_msg("{ .a =~ \"(\" }").starts_with("invalid regular expression \"(\""));
    match err("{ name = 1 }") {
        QueryError::Invalid(e) => assert_eq!((e.line, e.col), (1, 3)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn syntax_errors_have_positions() {
    // Tempo's own answer to this query.
    assert_eq!(
        err("{ this is not traceql").to_string(),
        "parse error at line 1, col 3: unknown identifier: this"
    );
    assert_eq!(
        parse_err("{ name = \"a\""),
        (1, 13, "syntax error: unexpected end of query, expecting `}`".into())
    );
    assert_eq!(
        parse_err("{ .a = }"),
        (
            1,
            8,
            "syntax error: unexpected `}`, expecting a field or a value".into()
        )
    );
    assert_eq!(
        parse_err("{\n  name =\n}"),
        (
            3,
            1,
            "syntax error: unexpected `}`, expecting a field or a value".into()
        )
    );
    assert_eq!(parse_err("{ .a = \"x }"), (1, 8, "literal not terminated".into()));
    assert_eq!(
        parse_err("{ span. = 1 }"),
        (1, 3, "expected an attribute name after `.`".into())
    );
    assert_eq!(
        parse_err("{ name = \"a\" } |"),
        (
            1,
            17,
            "syntax error: unexpected end of query, expecting a pipeline stage".into()
        )
    );
    assert_eq!(
        parse_err("{ name = \"a\" } }"),
        (1, 16, "syntax error: unexpected `}`, expecting end of query".into())
    );
    assert_eq!(
        parse_err("name = \"a\""),
        (1, 1, "syntax error: unexpected `name`, expecting `{`".into())
    );
    assert_eq!(parse_err("{ .a = 5x }"), (1, 8, "invalid number \"5\"".into()));
    assert_eq!(parse_err("{ .a = \"\\.\" }"), (1, 9, "invalid char escape".into()));
    assert_eq!(
        parse_err("{ .a = 1 = 2 }"),
        (
            1,
            10,
            "syntax error: unexpected `=`, expecting `&&`, `||` or `}`".into()
        )
    );
    assert_eq!(
        parse_err("{ span:nope = 1 }"),
        (1, 3, "unknown intrinsic: span:nope".into())
    );
    assert_eq!(
        parse_err("{ .a = 1 } & { }"),
        (1, 12, "unexpected character `&`".into())
    );
    assert_eq!(
        parse_err("{ } | count() > 1 && { }"),
        (
            1,
            19,
            "syntax error: unexpected `&&` after a pipeline stage (wrap the pipeline in parentheses)".into()
        )
    );
    assert_eq!(
        parse_err("{ } | select()"),
        (
            1,
            14,
            "syntax error: unexpected `)`, expecting a field or a value".into()
        )
    );
    assert_eq!(
        parse_err("{ } | count(duration) > 1"),
        (1, 13, "syntax error: unexpected `duration`, expecting `)`".into())
    );
    assert_eq!(parse_err("{ µ }"), (1, 3, "unexpected character `µ`".into()));
}

#[test]
fn query_hints() {
    assert!(!q("{ }").hints().most_recent);
    assert!(q("{ } with (most_recent=true)").hints().most_recent);
    assert!(
        !q("{ .a = 1 } | count() > 2 with(most_recent = false)")
            .hints()
            .most_recent
    );
    assert_eq!(
        q("{ .a = 1 } with (most_recent=true)").to_string(),
        q("{ .a = 1 }   with(most_recent = true)").to_string()
    );
    assert_eq!(
        q(&q("{ } with (most_recent=true)").to_string()).hints(),
        q("{ } with (most_recent=true)").hints(),
        "hints survive printing and parsing again"
    );
    assert!(
        parse_err("{ } with (most_recent=1)")
            .2
            .contains("expecting `true` or `false`")
    );
    assert!(
        parse_err("{ } with (most_recent=true")
            .2
            .contains("expecting `,` or `)`")
    );
    assert!(parse_err("{ } with most_recent=true").2.contains("`(` after `with`"));
    assert!(parse_err("{ } with (most_recent=true) { }").2.contains("end of query"));
}

#[test]
fn unsupported_constructs_are_named() {
    for op in [
        ">>", ">", "<<", "<", "~", "!>>", "!<<", "!>", "!<", "!~", "&>>", "&<<", "&>", "&<", "&~",
    ] {
        assert_eq!(
            unsupported_msg(&format!("{{ kind = server }} {op} {{ status = error }}")),
            format!("structural operator `{op}` is not supported yet"),
        );
    }
    let cases = [
        ("{ } | by(resource.service.name)", "`by()` is not supported yet"),
        ("{ } | coalesce()", "`coalesce()` is not supported yet"),
        (
            "{ } | rate() by (resource.service.name)",
            "metrics function `rate()` is not supported yet",
        ),
        (
            "{ } | count_over_time()",
            "metrics function `count_over_time()` is not supported yet",
        ),
        (
            "{ } | quantile_over_time(duration, .9)",
            "metrics function `quantile_over_time()` is not supported yet",
        ),
        ("{ } with (sample=true)", "query hint `sample` is not supported yet"),
        ("{ span.a + 1 > 2 }", "arithmetic operator `+` is not supported yet"),
        ("{ duration * 2 > 1s }", "arithmetic operator `*` is not supported yet"),
        ("{ span.a > 1 - 2 }", "arithmetic operator `-` is not supported yet"),
        ("{ -span.a > 1 }", "arithmetic negation `-` is not supported yet"),
        (
            "{ event.exception.message = \"x\" }",
            "the `event.` attribute scope is not supported yet",
        ),
        (
            "{ link.kind = \"x\" }",
            "the `link.` attribute scope is not supported yet",
        ),
        (
            "{ instrumentation.language = \"x\" }",
            "the `instrumentation.` attribute scope is not supported yet",
        ),
        ("{ parent.x = 1 }", "the `parent.` attribute scope is not supported yet"),
        (
            "{ event:timeSinceStart > 1s }",
            "intrinsic `event:timeSinceStart` is not supported yet",
        ),
        (
            "{ link:spanID = \"x\" }",
            "intrinsic `link:spanID` is not supported yet",
        ),
        (
            "{ span:parentID = \"x\" }",
            "intrinsic `span:parentID` is not supported yet",
        ),
        (
            "{ span:childCount > 1 }",
            "intrinsic `span:childCount` is not supported yet",
        ),
        ("{ childCount > 1 }", "intrinsic `childCount` is not supported yet"),
        (
            "{ instrumentation:name = \"x\" }",
            "intrinsic `instrumentation:name` is not supported yet",
        ),
        (
            "count() > 1",
            "a scalar filter without a spanset before it (write `{ } | count(...) ...`) is not supported yet",
        ),
        (
            "{ .a =~ .b }",
            "a regular expression taken from a field is not supported yet",
        ),
        ("{ } | count()", "`count()` without a comparison is not supported yet"),
        (
            "{ } | 2 < count()",
            "a scalar filter with the value first (write `count() > 2`) is not supported yet",
        ),
        (
            "{ } | avg(duration) > span.limit",
            "comparing `avg(duration)` with the field `span.limit` is not supported yet",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(unsupported_msg(text), message, "{text}");
    }
    match err("{ a } >> { }") {
        QueryError::Parse(e) => assert_eq!(e.message, "unknown identifier: a"),
        other => panic!("{other:?}"),
    }
    match err("{ .a = 1 }\n  >> { }") {
        QueryError::Unsupported(e) => assert_eq!((e.line, e.col), (2, 3)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fields_referenced_and_selected() {
    let query = q(
        "{ resource.service.name = \"a\" && status = error } && { .x > 1 || name = \"b\" } | { span.y != nil } | avg(duration) > 1s | select(span.db.system, name, span.y)",
    );
    assert_eq!(
        query.referenced_fields(),
        vec![
            attr(AttributeScope::Resource, "service.name"),
            FieldRef::Intrinsic(Intrinsic::Status),
            attr(AttributeScope::Unscoped, "x"),
            FieldRef::Intrinsic(Intrinsic::Name),
            attr(AttributeScope::Span, "y"),
        ]
    );
    assert_eq!(
        query.select_columns(),
        vec![
            attr(AttributeScope::Span, "db.system"),
            FieldRef::Intrinsic(Intrinsic::Name),
            attr(AttributeScope::Span, "y"),
        ]
    );
    assert_eq!(query.all_fields().len(), 7);
    assert_eq!(query.referenced_fields()[1].key(), "status");
    assert_eq!(query.referenced_fields()[0].key(), "service.name");
}

#[test]
fn round_trips() {
    for text in [
        "{ }",
        "{ resource.service.name = \"golden-grpc-svc\" }",
        "{ status = error }",
        "{ span.http.response.status_code >= 200 && kind = server }",
        "{ name = \"db.query\" } | select(span.db.system, span.db.statement)",
        "{ duration > 400ms }",
        "{ .a =~ \"x|y\" && .b !~ `\\d+` }",
        "{ span.a = nil || resource.b != nil }",
        "{ .a } && { .b } || { .c }",
        "({ .a } || { .b }) | count() > 2 | { status = ok }",
        "{ } | { .a = 1 } && { .b = 2 }",
        "{ .s = \"tab\\there \\\"q\\\" back\\\\slash\" }",
        "{ trace:duration > 1s && trace:rootService = \"x\" && trace:rootName = \"y\" }",
    ] {
        show(text);
    }
}
