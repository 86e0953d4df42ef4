//! The fixtures' fixed data and small helpers: the URIs, payloads and timings the suite's
//! scenarios name, and the tool results, JSON and logging helpers the handler uses.

use std::{sync::Arc, time::Duration};

use oauth_mcp::{
    rmcp::{
        model::{
            CallToolResult, ContentBlock, CreateMessageResult, JsonObject, LoggingLevel,
            SamplingContent, SamplingMessageContentBlock,
        },
        service::RequestContext,
        ErrorData as McpError, RoleServer,
    },
    rmcp_actix_web::transport::http,
};
use serde_json::{json, Value};

/// A 1×1 red PNG.
pub(crate) const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal (empty) WAV file.
pub(crate) const WAV_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

pub(crate) const STATIC_TEXT_URI: &str = "test://static-text";
pub(crate) const STATIC_BINARY_URI: &str = "test://static-binary";
pub(crate) const WATCHED_URI: &str = "test://watched-resource";
pub(crate) const TEMPLATE: &str = "test://template/{id}/data";
pub(crate) const TEMPLATE_PREFIX: &str = "test://template/";
pub(crate) const TEMPLATE_SUFFIX: &str = "/data";

/// How often a subscribed `test://watched-resource` reports an update, and for how long.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_secs(3);
pub(crate) const WATCH_MAX_UPDATES: u32 = 100;
/// `test_reconnection`: the `retry` hint, and how long to wait for the client to come back.
pub(crate) const RECONNECT_RETRY: Duration = Duration::from_millis(500);
pub(crate) const RECONNECT_WAIT: Duration = Duration::from_secs(10);
/// Pause between the steps of the logging and progress tools.
pub(crate) const STEP: Duration = Duration::from_millis(50);

pub(crate) fn text(s: impl Into<String>) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::success(vec![ContentBlock::text(s.into())]))
}

pub(crate) fn tool_error(s: impl Into<String>) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::error(vec![ContentBlock::text(s.into())]))
}

/// The object inside a `json!` literal (empty for anything else).
pub(crate) fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

/// The raw JSON Schema 2020-12 of `json_schema_2020_12_tool` (SEP-1613), passed through
/// unchanged: `$schema`, `$defs` and `additionalProperties` must survive `tools/list`.
pub(crate) fn json_schema_2020_12_input() -> Arc<JsonObject> {
    Arc::new(object(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "type": "object",
                "properties": {
                    "street": { "type": "string" },
                    "city": { "type": "string" }
                }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" }
        },
        "additionalProperties": false
    })))
}

/// Severity order of the MCP (syslog) levels; `LoggingLevel` has no `Ord`.
pub(crate) fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// A serializable value as plain text: strings without quotes, anything else as JSON.
pub(crate) fn plain<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The first text block of a sampling result.
pub(crate) fn sampling_text(result: &CreateMessageResult) -> String {
    let first_text = |block: &SamplingMessageContentBlock| match block {
        SamplingMessageContentBlock::Text(t) => Some(t.text.clone()),
        _ => None,
    };
    match &result.message.content {
        SamplingContent::Single(block) => first_text(block),
        SamplingContent::Multiple(blocks) => blocks.iter().find_map(first_text),
    }
    .unwrap_or_else(|| "No response".into())
}

/// The session id of the request a handler is serving (stateful sessions only).
pub(crate) fn session_id(ctx: &RequestContext<RoleServer>) -> Option<String> {
    ctx.extensions
        .get::<http::request::Parts>()?
        .headers
        .get("mcp-session-id")?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// Reads `test://template/{id}/data`'s `id`.
pub(crate) fn template_id(uri: &str) -> Option<&str> {
    uri.strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)
        .filter(|id| !id.is_empty() && !id.contains('/'))
}
