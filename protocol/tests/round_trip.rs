//! Wire-format tests: the JSON shape documented in docs/protocol.md.

use campus_protocol::*;

#[test]
fn client_messages_parse_from_documented_json() {
    let m: ClientMsg = serde_json::from_str(
        r#"{"type":"write","id":7,"path":"main.py","content":"print(1)\n","base_version":"abc"}"#,
    )
    .expect("write parses");
    assert_eq!(
        m,
        ClientMsg::Files(FileRequest::Write {
            id: Some(7),
            path: "main.py".into(),
            content: "print(1)\n".into(),
            encoding: Encoding::Utf8,
            base_version: Some("abc".into())
        })
    );
    assert_eq!(m.id(), Some(7));
    // File operations are their own group: the connection routes them to its file task.
    assert!(matches!(m, ClientMsg::Files(_)));
    let run: ClientMsg =
        serde_json::from_str(r#"{"type":"run","id":1,"path":"a.py","mode":"hybrid"}"#)
            .expect("run");
    assert!(matches!(
        run,
        ClientMsg::Session(SessionRequest::Run { .. })
    ));
    assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"nope","id":1}"#).is_err());
    assert_eq!(client::salvage_id(r#"{"type":"nope","id":9}"#), Some(9));
}

#[test]
fn server_messages_serialize_tagged() {
    let e = ServerMsg::Connection(ConnectionMsg::Error {
        id: Some(3),
        code: ErrorCode::RateLimited,
        message: "slow down".into(),
        retry_after_ms: Some(1500),
        current_version: None,
        request_id: None,
    });
    let v: serde_json::Value = serde_json::to_value(&e).expect("ser");
    assert_eq!(v["type"], "error");
    assert_eq!(v["code"], "rate_limited");
    assert_eq!(v["retry_after_ms"], 1500);
    assert!(v.get("request_id").is_none());
    let back: ServerMsg = serde_json::from_value(v).expect("de");
    assert_eq!(back, e);
}

#[test]
fn run_ended_is_flattened() {
    let m = ServerMsg::Session(SessionMsg::RunEnded {
        id: None,
        ended: RunEnded {
            run_id: "r1".into(),
            reason: EndReason::MemoryLimit,
            exit_code: None,
            signal: Some(9),
            cpu_ms: 10,
            cpu_limit_ms: 30_000,
            peak_memory_bytes: 134_217_728,
            memory_limit_bytes: 134_217_728,
            duration_ms: 420,
            output_bytes: 0,
            message: "used more memory than the limit".into(),
        },
    });
    let v = serde_json::to_value(&m).expect("ser");
    assert_eq!(v["type"], "run_ended");
    assert_eq!(v["reason"], "memory_limit");
    let back: ServerMsg = serde_json::from_value(v).expect("de");
    assert_eq!(back, m);
}

#[test]
fn error_codes_have_stable_names() {
    for c in ErrorCode::ALL {
        let s = serde_json::to_string(&c).expect("ser");
        assert_eq!(s, format!("\"{}\"", c.as_str()));
    }
}
