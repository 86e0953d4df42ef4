//! The suite's tool fixtures (`tools/list`, `tools/call`): content types, logging and
//! progress notifications, errors, reconnection (SEP-1699), sampling, elicitation (SEP-1034,
//! SEP-1330) and a JSON Schema 2020-12 input schema (SEP-1613).

use oauth_mcp::{
    mcp::sessions::CloseRequestStream,
    rmcp::{
        self,
        handler::server::wrapper::Parameters,
        model::{
            CallToolResult, ContentBlock, CreateMessageRequestParams, JsonObject, LoggingLevel,
            ProgressNotificationParam, ResourceContents, SamplingMessage,
        },
        schemars,
        service::RequestContext,
        tool, tool_router, ErrorData as McpError, RoleServer,
    },
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{fixtures::*, server::*};

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

#[tool_router(vis = "pub(crate)")]
impl ConformanceServer {
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
