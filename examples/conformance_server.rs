//! The official MCP conformance suite's server fixtures (`@modelcontextprotocol/conformance`,
//! `conformance server`), served at `/mcp` by this library: the authorization server, the
//! bearer guard, the session actor and rmcp, exactly as an embedding application would use
//! them. Only the handler below is specific to the suite.
//!
//! ```sh
//! cargo run --example conformance_server -- [--port 3001] [--data-dir DIR]
//! ```
//!
//! - `--port 0` picks a free port. The first line on stdout names the endpoint:
//!   `conformance server: http://127.0.0.1:<port>/mcp (issuer http://127.0.0.1:<port>)`.
//! - The issuer is `http://127.0.0.1:<port>`; the demo client and user are seeded, so a token
//!   comes from the usual authorization-code + PKCE flow (see `.ci/conformance.sh`).
//! - Without `--data-dir` the sled database lives in a temporary directory removed on exit.
//! - SIGINT or SIGTERM stops the server.
//!
//! The fixtures follow the suite's scenario descriptions (0.1.16 and 0.2.0-alpha) and its
//! reference "everything server": 14 tools, 3 resources and a template, 4 prompts, logging and
//! completions. The reference server's dynamic fixtures (`test_dynamic_tool`,
//! `test://dynamic-resource`, `test_dynamic_prompt`), which no scenario exercises, are left
//! out so that every listing is deterministic.

// Logging, sampling and `resources/subscribe` are deprecated in rmcp 3 (SEP-2577), but they
// are what the suite tests on the session-based protocol versions.
#![allow(deprecated)]

use std::{
    collections::HashMap,
    io::Write as _,
    net::TcpListener,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use actix::Addr;
use actix_web::{App, HttpServer};
use oauth_mcp::{
    clock::SystemClock,
    configure_authorization_server,
    mcp::{
        sessions::{CloseRequestStream, McpSessions},
        McpEndpoint, ToolScopes,
    },
    open_db,
    rmcp::{
        self,
        handler::server::{
            router::{prompt::PromptRouter, tool::ToolRouter},
            wrapper::Parameters,
        },
        model::{
            CallToolResult, CompleteRequestParams, CompleteResult, CompletionInfo, ContentBlock,
            CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
            ElicitationSchema, Implementation, JsonObject, ListResourceTemplatesResult,
            ListResourcesResult, LoggingLevel, LoggingMessageNotificationParam,
            PaginatedRequestParams, ProgressNotificationParam, PromptMessage,
            ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Reference,
            Resource, ResourceContents, ResourceTemplate, ResourceUpdatedNotificationParam, Role,
            SamplingContent, SamplingMessage, SamplingMessageContentBlock, ServerCapabilities,
            ServerConfig, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
        },
        prompt, prompt_handler, prompt_router, schemars,
        service::RequestContext,
        tool, tool_handler, tool_router, ErrorData as McpError, RoleServer, ServerHandler,
    },
    rmcp_actix_web::transport::http,
    Config, Services,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// A 1×1 red PNG.
const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal (empty) WAV file.
const WAV_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

const STATIC_TEXT_URI: &str = "test://static-text";
const STATIC_BINARY_URI: &str = "test://static-binary";
const WATCHED_URI: &str = "test://watched-resource";
const TEMPLATE: &str = "test://template/{id}/data";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

/// How often a subscribed `test://watched-resource` reports an update, and for how long.
const WATCH_INTERVAL: Duration = Duration::from_secs(3);
const WATCH_MAX_UPDATES: u32 = 100;
/// `test_reconnection`: the `retry` hint, and how long to wait for the client to come back.
const RECONNECT_RETRY: Duration = Duration::from_millis(500);
const RECONNECT_WAIT: Duration = Duration::from_secs(10);
/// Pause between the steps of the logging and progress tools.
const STEP: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------
// Arguments of tools and prompts
// ---------------------------------------------------------------------------------------

/// Arguments of `test_sampling`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SamplingArgs {
    /// The prompt to send to the LLM
    prompt: String,
}

/// Arguments of `test_elicitation`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ElicitationArgs {
    /// The message to show the user
    message: String,
}

/// Arguments of `test_prompt_with_arguments`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct PromptArgs {
    /// First test argument
    arg1: String,
    /// Second test argument
    arg2: String,
}

/// Arguments of `test_prompt_with_embedded_resource`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct EmbeddedResourceArgs {
    /// URI of the resource to embed
    resource_uri: String,
}

// ---------------------------------------------------------------------------------------
// The handler
// ---------------------------------------------------------------------------------------

/// Per-session state: rmcp builds one handler per session.
#[derive(Debug)]
struct SessionState {
    /// Minimum level of `notifications/message` (`logging/setLevel`).
    log_level: LoggingLevel,
    /// Subscribed URIs, each with the generation of its subscription (a re-subscription
    /// ends the previous update task).
    subscriptions: HashMap<String, u64>,
    generation: u64,
}

/// The conformance fixtures.
#[derive(Clone)]
struct ConformanceServer {
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
    sessions: Addr<McpSessions>,
    state: Arc<Mutex<SessionState>>,
}

impl std::fmt::Debug for ConformanceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConformanceServer")
    }
}

fn text(s: impl Into<String>) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::success(vec![ContentBlock::text(s.into())]))
}

fn tool_error(s: impl Into<String>) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::error(vec![ContentBlock::text(s.into())]))
}

/// The object inside a `json!` literal (empty for anything else).
fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

/// The raw JSON Schema 2020-12 of `json_schema_2020_12_tool` (SEP-1613), passed through
/// unchanged: `$schema`, `$defs` and `additionalProperties` must survive `tools/list`.
fn json_schema_2020_12_input() -> Arc<JsonObject> {
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
fn severity(level: LoggingLevel) -> u8 {
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
fn plain<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The first text block of a sampling result.
fn sampling_text(result: &CreateMessageResult) -> String {
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
fn session_id(ctx: &RequestContext<RoleServer>) -> Option<String> {
    ctx.extensions
        .get::<http::request::Parts>()?
        .headers
        .get("mcp-session-id")?
        .to_str()
        .ok()
        .map(str::to_owned)
}

#[tool_router]
impl ConformanceServer {
    fn new(sessions: Addr<McpSessions>) -> Self {
        Self {
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
            sessions,
            state: Arc::new(Mutex::new(SessionState {
                log_level: LoggingLevel::Info,
                subscriptions: HashMap::new(),
                generation: 0,
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `notifications/message` if `level` passes the session's `logging/setLevel`, on
    /// the POST stream of the call (`oauth_mcp::mcp::notify_log`), so a client that never
    /// opens the GET stream still gets it.
    async fn log(&self, ctx: &RequestContext<RoleServer>, level: LoggingLevel, message: &str) {
        if severity(level) < severity(self.state().log_level) {
            return;
        }
        let param = LoggingMessageNotificationParam::new(level, json!(message))
            .with_logger("conformance-server");
        if let Err(e) = oauth_mcp::mcp::notify_log(ctx, &self.sessions, param).await {
            tracing::debug!(error = %e, "log notification not sent");
        }
    }

    /// Sends an `elicitation/create` with `schema` and describes the answer.
    async fn elicit(
        &self,
        ctx: &RequestContext<RoleServer>,
        message: String,
        schema: Value,
        answer_prefix: &str,
    ) -> Result<CallToolResult, McpError> {
        let requested_schema = ElicitationSchema::from_json_schema(object(schema))
            .map_err(|e| McpError::internal_error(format!("elicitation schema: {e}"), None))?;
        let params = ElicitRequestParams::FormElicitationParams {
            meta: None,
            message,
            requested_schema,
        };
        match ctx.peer.create_elicitation(params).await {
            Ok(result) => {
                let content = result.content.unwrap_or_else(|| json!({}));
                text(format!(
                    "{answer_prefix}: action={}, content={content}",
                    plain(&result.action)
                ))
            }
            Err(e) => tool_error(format!("Elicitation not supported or error: {e}")),
        }
    }

    #[tool(description = "Tests simple text content response")]
    async fn test_simple_text(&self) -> Result<CallToolResult, McpError> {
        text("This is a simple text response for testing.")
    }

    #[tool(description = "Tests image content response")]
    async fn test_image_content(&self) -> Result<CallToolResult, McpError> {
        Ok(CallToolResult::success(vec![ContentBlock::image(
            PNG_BASE64,
            "image/png",
        )]))
    }

    #[tool(description = "Tests audio content response")]
    async fn test_audio_content(&self) -> Result<CallToolResult, McpError> {
        Ok(CallToolResult::success(vec![ContentBlock::audio(
            WAV_BASE64,
            "audio/wav",
        )]))
    }

    #[tool(description = "Tests embedded resource content response")]
    async fn test_embedded_resource(&self) -> Result<CallToolResult, McpError> {
        Ok(CallToolResult::success(vec![ContentBlock::resource(
            ResourceContents::text(
                "This is an embedded resource content.",
                "test://embedded-resource",
            )
            .with_mime_type("text/plain"),
        )]))
    }

    #[tool(description = "Tests response with multiple content types (text, image, resource)")]
    async fn test_multiple_content_types(&self) -> Result<CallToolResult, McpError> {
        Ok(CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG_BASE64, "image/png"),
            ContentBlock::resource(
                ResourceContents::text(
                    r#"{"test":"data","value":123}"#,
                    "test://mixed-content-resource",
                )
                .with_mime_type("application/json"),
            ),
        ]))
    }

    #[tool(description = "Tests tool that emits log messages during execution")]
    async fn test_tool_with_logging(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        self.log(&ctx, LoggingLevel::Info, "Tool execution started")
            .await;
        tokio::time::sleep(STEP).await;
        self.log(&ctx, LoggingLevel::Info, "Tool processing data")
            .await;
        tokio::time::sleep(STEP).await;
        self.log(&ctx, LoggingLevel::Info, "Tool execution completed")
            .await;
        text("Tool with logging executed successfully")
    }

    #[tool(description = "Tests tool that reports progress notifications")]
    async fn test_tool_with_progress(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let token = ctx.meta.get_progress_token();
        for (i, progress) in [0u8, 50, 100].into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(STEP).await;
            }
            if let Some(token) = &token {
                let param = ProgressNotificationParam::new(token.clone(), f64::from(progress))
                    .with_total(100.0)
                    .with_message(format!("Completed step {progress} of 100"));
                if let Err(e) = ctx.peer.notify_progress(param).await {
                    tracing::debug!(error = %e, "progress notification not sent");
                }
            }
        }
        text(token.map_or_else(|| "0".to_owned(), |t| plain(&t)))
    }

    #[tool(description = "Tests error response handling")]
    async fn test_error_handling(&self) -> Result<CallToolResult, McpError> {
        tool_error("This tool intentionally returns an error for testing")
    }

    #[tool(
        description = "Tests SSE stream disconnection and client reconnection (SEP-1699). Server will close the stream mid-call and send the result after client reconnects."
    )]
    async fn test_reconnection(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let request_id = serde_json::to_string(&ctx.id)
            .map_err(|e| McpError::internal_error(format!("request id: {e}"), None))?;
        if let Some(id) = session_id(&ctx) {
            let close = CloseRequestStream {
                id: id.into(),
                request_id,
                retry: RECONNECT_RETRY,
            };
            match self.sessions.send(close).await {
                // rmcp drops a request stream (and its replay cache) once its response is
                // routed, so answer only after the client has resumed it.
                Ok(Some(resumed)) => {
                    if tokio::time::timeout(RECONNECT_WAIT, resumed).await.is_err() {
                        tracing::warn!("test_reconnection: the client did not resume in time");
                    }
                }
                Ok(None) => tracing::warn!("test_reconnection: request stream not tracked"),
                Err(e) => return tool_error(format!("session manager unavailable: {e}")),
            }
        }
        text("Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.")
    }

    #[tool(description = "Tests server-initiated sampling (LLM completion request)")]
    async fn test_sampling(
        &self,
        Parameters(args): Parameters<SamplingArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let params =
            CreateMessageRequestParams::new(vec![SamplingMessage::user_text(args.prompt)], 100);
        match ctx.peer.create_message(params).await {
            Ok(result) => text(format!("LLM response: {}", sampling_text(&result))),
            Err(e) => tool_error(format!("Sampling not supported or error: {e}")),
        }
    }

    #[tool(description = "Tests server-initiated elicitation (user input request)")]
    async fn test_elicitation(
        &self,
        Parameters(args): Parameters<ElicitationArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let schema = json!({
            "type": "object",
            "properties": {
                "username": { "type": "string", "description": "User's response" },
                "email": { "type": "string", "description": "User's email address" }
            },
            "required": ["username", "email"]
        });
        self.elicit(&ctx, args.message, schema, "User response")
            .await
    }

    #[tool(description = "Tests elicitation with default values per SEP-1034")]
    async fn test_elicitation_sep1034_defaults(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "description": "User name", "default": "John Doe" },
                "age": { "type": "integer", "description": "User age", "default": 30 },
                "score": { "type": "number", "description": "User score", "default": 95.5 },
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active"
                },
                "verified": {
                    "type": "boolean",
                    "description": "Verification status",
                    "default": true
                }
            },
            "required": []
        });
        let message = "Please review and update the form fields with defaults".to_owned();
        self.elicit(&ctx, message, schema, "Elicitation completed")
            .await
    }

    #[tool(description = "Tests elicitation with enum schema improvements per SEP-1330")]
    async fn test_elicitation_sep1330_enums(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let schema = json!({
            "type": "object",
            "properties": {
                "untitledSingle": {
                    "type": "string",
                    "description": "Select one option",
                    "enum": ["option1", "option2", "option3"]
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Select one option with titles",
                    "oneOf": [
                        { "const": "value1", "title": "First Option" },
                        { "const": "value2", "title": "Second Option" },
                        { "const": "value3", "title": "Third Option" }
                    ]
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Select one option (legacy)",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"]
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Select multiple options",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Select multiple options with titles",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {
                        "anyOf": [
                            { "const": "value1", "title": "First Choice" },
                            { "const": "value2", "title": "Second Choice" },
                            { "const": "value3", "title": "Third Choice" }
                        ]
                    }
                }
            },
            "required": []
        });
        let message = "Please select options from the enum fields".to_owned();
        self.elicit(&ctx, message, schema, "Elicitation completed")
            .await
    }

    #[tool(
        description = "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
        input_schema = json_schema_2020_12_input()
    )]
    async fn json_schema_2020_12_tool(
        &self,
        Parameters(args): Parameters<JsonObject>,
    ) -> Result<CallToolResult, McpError> {
        text(format!(
            "JSON Schema 2020-12 tool called with: {}",
            Value::Object(args)
        ))
    }
}

#[prompt_router]
impl ConformanceServer {
    #[prompt(
        name = "test_simple_prompt",
        title = "Simple Test Prompt",
        description = "A simple prompt without arguments"
    )]
    async fn test_simple_prompt(&self) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            "This is a simple prompt for testing.",
        )]
    }

    #[prompt(
        name = "test_prompt_with_arguments",
        title = "Prompt With Arguments",
        description = "A prompt with required arguments"
    )]
    async fn test_prompt_with_arguments(
        &self,
        Parameters(args): Parameters<PromptArgs>,
    ) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                args.arg1, args.arg2
            ),
        )]
    }

    #[prompt(
        name = "test_prompt_with_embedded_resource",
        title = "Prompt With Embedded Resource",
        description = "A prompt that includes an embedded resource"
    )]
    async fn test_prompt_with_embedded_resource(
        &self,
        Parameters(args): Parameters<EmbeddedResourceArgs>,
    ) -> Vec<PromptMessage> {
        vec![
            PromptMessage::new(
                Role::User,
                ContentBlock::resource(
                    ResourceContents::text(
                        "Embedded resource content for testing.",
                        args.resource_uri,
                    )
                    .with_mime_type("text/plain"),
                ),
            ),
            PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
        ]
    }

    #[prompt(
        name = "test_prompt_with_image",
        title = "Prompt With Image",
        description = "A prompt that includes image content"
    )]
    async fn test_prompt_with_image(&self) -> Vec<PromptMessage> {
        vec![
            // Not `PromptMessage::new_image`: it takes raw bytes and encodes them itself.
            PromptMessage::new(Role::User, ContentBlock::image(PNG_BASE64, "image/png")),
            PromptMessage::new_text(Role::User, "Please analyze the image above."),
        ]
    }
}

/// Reads `test://template/{id}/data`'s `id`.
fn template_id(uri: &str) -> Option<&str> {
    uri.strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for ConformanceServer {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_logging()
            .enable_completions()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(caps)
            .with_server_info(Implementation::new(
                "oauth-mcp-conformance-server",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("The MCP conformance suite's fixtures, served by oauth-mcp.")
    }

    fn supported_protocol_versions(
        &self,
    ) -> std::borrow::Cow<'static, [rmcp::model::ProtocolVersion]> {
        oauth_mcp::mcp::endpoint::supported_protocol_versions()
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.state().log_level = request.level;
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let known = match &request.r#ref {
            Reference::Prompt(p) => self.prompt_router.has_route(&p.name),
            Reference::Resource(r) => r.uri == TEMPLATE,
            _ => false,
        };
        if !known {
            return Err(McpError::invalid_params(
                "unknown completion reference",
                None,
            ));
        }
        // Like the reference server: no suggestions.
        let info = CompletionInfo::with_all_values(Vec::new())
            .map_err(|e| McpError::internal_error(e, None))?;
        Ok(CompleteResult::new(info))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(STATIC_TEXT_URI, "static-text")
                .with_title("Static Text Resource")
                .with_description("A static text resource for testing")
                .with_mime_type("text/plain"),
            Resource::new(STATIC_BINARY_URI, "static-binary")
                .with_title("Static Binary Resource")
                .with_description("A static binary resource (image) for testing")
                .with_mime_type("image/png"),
            Resource::new(WATCHED_URI, "watched-resource")
                .with_title("Watched Resource")
                .with_description("A resource that auto-updates every 3 seconds")
                .with_mime_type("text/plain"),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(TEMPLATE, "template")
                .with_title("Resource Template")
                .with_description("A resource template with parameter substitution")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        let contents = match uri {
            STATIC_TEXT_URI => {
                ResourceContents::text("This is the content of the static text resource.", uri)
                    .with_mime_type("text/plain")
            }
            STATIC_BINARY_URI => {
                ResourceContents::blob(PNG_BASE64, uri).with_mime_type("image/png")
            }
            WATCHED_URI => {
                ResourceContents::text("Watched resource content", uri).with_mime_type("text/plain")
            }
            _ => {
                let Some(id) = template_id(uri) else {
                    return Err(McpError::resource_not_found(
                        format!("unknown resource {uri}"),
                        None,
                    ));
                };
                // Key order as in the reference server: id, templateTest, data.
                let body = format!(
                    r#"{{"id":{},"templateTest":true,"data":{}}}"#,
                    Value::from(id),
                    Value::from(format!("Data for ID: {id}"))
                );
                ResourceContents::text(body, uri).with_mime_type("application/json")
            }
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let uri = request.uri;
        let generation = {
            let mut state = self.state();
            state.generation += 1;
            let generation = state.generation;
            state.subscriptions.insert(uri.clone(), generation);
            generation
        };
        if uri == WATCHED_URI {
            // Bounded: stops on unsubscribe, re-subscribe, a closed session or after
            // WATCH_MAX_UPDATES updates. Updates go to the session's GET stream.
            let state = Arc::clone(&self.state);
            let peer = ctx.peer.clone();
            tokio::spawn(async move {
                for _ in 0..WATCH_MAX_UPDATES {
                    tokio::time::sleep(WATCH_INTERVAL).await;
                    let current = state
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .subscriptions
                        .get(&uri)
                        .copied();
                    if current != Some(generation) {
                        break;
                    }
                    let param = ResourceUpdatedNotificationParam::new(uri.clone());
                    if peer.notify_resource_updated(param).await.is_err() {
                        break;
                    }
                }
            });
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.state().subscriptions.remove(&request.uri);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The process
// ---------------------------------------------------------------------------------------

struct Args {
    port: u16,
    data_dir: Option<PathBuf>,
}

const USAGE: &str = "usage: conformance_server [--port N (default 3001, 0 = any free port)] [--data-dir DIR (default: a temporary directory)]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 3001,
        data_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--port" => {
                let v = value()?;
                args.port = v.parse().map_err(|e| format!("--port {v}: {e}"))?;
            }
            "--data-dir" => args.data_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

#[actix_web::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,oauth_mcp=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance_server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(("127.0.0.1", args.port))?;
    let local_addr = listener.local_addr()?;
    let port = local_addr.port();
    // Kept alive until the end of `run`, then removed.
    let temp_dir = match &args.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("oauth-mcp-conformance-")
                .tempdir()?,
        ),
    };
    let mut config = Config::default();
    config.bind = local_addr;
    config.public_url = Some(url::Url::parse(&format!("http://127.0.0.1:{port}"))?);
    config.data_dir = match (&args.data_dir, &temp_dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(tmp)) => tmp.path().to_owned(),
        (None, None) => return Err("no data directory".into()),
    };
    let settings = config.settings(port)?;
    let db = open_db(&config)?;
    let services = Services::start(settings, &db, Arc::new(SystemClock)).await?;

    let sessions = services.sessions.clone();
    let endpoint = McpEndpoint::with_stream_tracking(
        &services,
        move || ConformanceServer::new(sessions.clone()),
        ToolScopes::new(),
    );
    let app_services = services.clone();
    let server = HttpServer::new(move || {
        let services = app_services.clone();
        let endpoint = endpoint.clone();
        App::new().configure(move |cfg| {
            configure_authorization_server(cfg, &services);
            endpoint.configure(cfg);
        })
    })
    .workers(2)
    .tcp_nodelay(true)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let server_task = actix_web::rt::spawn(server);

    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "conformance server: http://127.0.0.1:{port}/mcp (issuer {})",
        services.settings.issuer
    )?;
    stdout.flush()?;

    oauth_mcp::app::shutdown_signal().await;
    tracing::info!("shutting down");
    // Open SSE streams (GET streams of idle sessions) would hold a graceful stop.
    handle.stop(false).await;
    let _ = server_task.await;
    services.shutdown().await;
    let _ = tokio::task::spawn_blocking(move || db.flush()).await;
    drop(temp_dir);
    Ok(())
}
