//! Decoders never panic: arbitrary bytes and mutated corpus bodies go through every decoder.

use keel_eureka::*;
use proptest::prelude::*;

use crate::corpus::all_bodies;

fn feed(body: &[u8]) {
    for format in [Format::Json, Format::Xml] {
        let _ = decode_instance(format, body);
        let _ = decode_application(format, body);
        let _ = decode_applications(format, body);
    }
    let _ = decode_replication_list(body);
    let _ = decode_replication_response(body);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let tokens: Vec<&'static [u8]> = vec![
        b"<",
        b">",
        b"</",
        b"/>",
        b"&",
        b"&amp;",
        b"&#0;",
        b"&#x110000;",
        b"<!DOCTYPE x>",
        b"<![CDATA[",
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b":",
        b",",
        b"null",
        b"-1",
        b"99999999999999999999",
        b"\\u0000",
        b"\xff",
        b"\xc3",
        b"<instance>",
        b"\"instance\":",
        b"\"$\":",
        b"\"@enabled\":",
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Mutation::Flip(a, b)),
        (any::<usize>(), 1usize..32).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), prop::sample::select(tokens))
            .prop_map(|(a, t)| Mutation::Insert(a, t.to_vec())),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..64).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    let len = body.len().max(1);
    match m {
        Mutation::Flip(at, b) => {
            if !body.is_empty() {
                body[at % len] = *b;
            }
        }
        Mutation::Delete(at, n) => {
            let start = (at % len).min(body.len());
            let end = (start + n).min(body.len());
            body.drain(start..end);
        }
        Mutation::Insert(at, t) => {
            let at = (at % len).min(body.len());
            body.splice(at..at, t.iter().copied());
        }
        Mutation::Truncate(at) => body.truncate(at % len),
        Mutation::Duplicate(at, n) => {
            let start = (at % len).min(body.len());
            let end = (start + n).min(body.len());
            let chunk = body[start..end].to_vec();
            body.splice(start..start, chunk);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        feed(&body);
    }

    #[test]
    fn mutated_corpus_never_panics(
        pick in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let corpus = all_bodies();
        let (_, _, body) = &corpus[pick.index(corpus.len())];
        let mut body = body.clone();
        for m in &mutations {
            apply(&mut body, m);
        }
        feed(&body);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep_xml = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    assert!(decode_instance(Format::Xml, deep_xml.as_bytes()).is_err());
    let deep_json = format!("{}{}", "{\"instance\":".repeat(10_000), "}".repeat(10_000));
    assert!(decode_instance(Format::Json, deep_json.as_bytes()).is_err());
    let deep_arrays = format!(
        "{{\"applications\":{{\"application\":{}{}}}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(decode_applications(Format::Json, deep_arrays.as_bytes()).is_err());
}
