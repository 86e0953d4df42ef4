//! Stored records: `decode_token` and `decode_code` (and the expiry peeks) on arbitrary
//! bytes; whatever decodes must survive an encode/decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_mcp::storage::{codec, StoredCode};

fuzz_target!(|data: &[u8]| {
    let _ = codec::token_expires_at(data);
    let _ = codec::code_expires(data);
    if let Some(record) = codec::decode_token(data) {
        assert_eq!(codec::token_expires_at(data), Some(record.expires_at));
        let again = codec::decode_token(&codec::encode_token(&record)).expect("round trip");
        assert_eq!(format!("{record:?}"), format!("{again:?}"));
    }
    if let Some(code) = codec::decode_code(data) {
        let (encoded, expires) = match &code {
            StoredCode::Live(r) => (codec::encode_code(r), r.expires_at),
            StoredCode::Used(r) => (codec::encode_used_code(r), r.forget_at),
        };
        assert_eq!(codec::code_expires(data), Some(expires));
        let again = codec::decode_code(&encoded).expect("round trip");
        assert_eq!(format!("{code:?}"), format!("{again:?}"));
    }
});
