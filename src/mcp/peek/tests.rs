//! Tests of [`super`].

use super::*;

fn target(body: &str) -> Result<Option<Target>, PeekError> {
    peek(body.as_bytes()).map(|p| p.target)
}

fn tool(name: &str) -> Result<Option<Target>, PeekError> {
    Ok(Some(Target {
        kind: TargetKind::Tool,
        name: name.into(),
    }))
}

/// Bodies rmcp dispatches as a call of `sign`: the guard must read the same.
const ODD_BUT_DISPATCHED: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sign","arguments":{}}}"#,
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sign","protocolVersion":1}}"#,
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sign","clientInfo":"x","uri":[]}}"#,
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sign","_meta":null,"x":{"y":[1,{"z":null}]}}}"#,
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sign"},"extra":{"method":"ping"}}"#,
    r#"{"params":{"arguments":{"name":"other"},"name":"sign"},"method":"tools/call","id":"a","jsonrpc":"2.0"}"#,
    r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"s\u0069gn"}}"#,
];

#[test]
fn odd_members_do_not_hide_the_tool() {
    for body in ODD_BUT_DISPATCHED {
        assert_eq!(target(body), tool("sign"), "{body}");
        assert_eq!(
            rmcp_target(body.as_bytes()),
            tool("sign").unwrap(),
            "{body}"
        );
    }
}

#[test]
fn ambiguous_or_unreadable_bodies_are_refused() {
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"sign","arguments":{{"a":{}1{}}}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let refused = [
        "",
        "not json",
        "[]",
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sign"}}]"#,
        r#""tools/call""#,
        "null",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sign"}} {}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read","name":"sign"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"sign"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sign"},"params":{"name":"read"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sign","arguments":{"a":1,"a":2}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sign","n\u0061me":"read"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["sign"]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":["tools/call"],"params":{"name":"sign"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":null,"params":{"name":"sign"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"uri":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud800"}}"#,
        deep.as_str(),
    ];
    for body in refused {
        assert!(peek(body.as_bytes()).is_err(), "{body}");
    }
}

#[test]
fn nesting_is_bounded_without_exhausting_the_stack() {
    for n in [MAX_DEPTH - 2, MAX_DEPTH + 1, 10_000, 500_000] {
        let body = format!(
            r#"{{"method":"ping","x":{}{}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        );
        let result = peek(body.as_bytes());
        assert_eq!(result.is_ok(), n < MAX_DEPTH, "{n}: {result:?}");
    }
}

/// A small deterministic stand-in for the `mcp_jsonrpc` fuzz target: every one-edit
/// mutation of a few seeds keeps the guard's reading consistent with rmcp's.
#[test]
fn mutated_bodies_never_make_guard_and_rmcp_disagree() {
    let seeds = [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sign","arguments":{"m":"x"},"clientInfo":"y"}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"a://b","_meta":null}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"greet","arguments":{}}}"#,
    ];
    let inserts = [
        "\"",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "null",
        "1",
        "\\",
        r#""name":"z","#,
        r#""uri":"z","#,
        r#""method":"tools/call","#,
        r#""params":{},"#,
    ];
    let mut checked = 0;
    for seed in seeds {
        for i in 0..=seed.len() {
            let (head, tail) = seed.split_at(i);
            let deleted = format!("{head}{}", tail.get(1..).unwrap_or(""));
            let mutated = inserts
                .iter()
                .map(|ins| format!("{head}{ins}{tail}"))
                .chain([deleted]);
            for body in mutated {
                let peeked = peek(body.as_bytes());
                if let (Some(dispatched), Ok(p)) = (rmcp_target(body.as_bytes()), &peeked) {
                    assert_eq!(p.target.as_ref(), Some(&dispatched), "{body}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "{checked}");
}

#[test]
fn resources_prompts_and_initialize() {
    let p = peek(
        br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a://b","name":7}}"#,
    )
    .unwrap();
    assert_eq!(
        p.target,
        Some(Target {
            kind: TargetKind::Resource,
            name: "a://b".into()
        })
    );
    let p = peek(
        br#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"greet","uri":{}}}"#,
    )
    .unwrap();
    assert_eq!(p.target.unwrap().kind, TargetKind::Prompt);
    let p = peek(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"},"name":5}}"#)
        .unwrap();
    assert!(p.is_initialize());
    assert_eq!(p.protocol_version.as_deref(), Some("2025-11-25"));
    assert_eq!(p.client_info.as_deref(), Some("c 1"));
    let p = peek(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":5,"clientInfo":"x"}}"#)
        .unwrap();
    assert!(p.is_initialize() && p.protocol_version.is_none() && p.client_info.is_none());
    // A response from the client names no method.
    let p = peek(br#"{"jsonrpc":"2.0","id":1,"result":{"method":"tools/call"}}"#).unwrap();
    assert_eq!(p, Peek::default());
}
