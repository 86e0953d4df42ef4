//! The conformance handler's state: one `ConformanceServer` per MCP session (rmcp builds one
//! per session), with its tool and prompt routers, the session actor for notifications, and
//! the session's logging level and resource subscriptions.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use actix::Addr;
use oauth_mcp::{
    mcp::sessions::McpSessions,
    rmcp::{
        handler::server::router::{prompt::PromptRouter, tool::ToolRouter},
        model::{
            CallToolResult, ElicitRequestParams, ElicitationSchema, LoggingLevel,
            LoggingMessageNotificationParam,
        },
        service::RequestContext,
        ErrorData as McpError, RoleServer,
    },
};
use serde_json::{json, Value};

use crate::fixtures::*;

/// Per-session state: rmcp builds one handler per session.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// Minimum level of `notifications/message` (`logging/setLevel`).
    pub(crate) log_level: LoggingLevel,
    /// Subscribed URIs, each with the generation of its subscription (a re-subscription
    /// ends the previous update task).
    pub(crate) subscriptions: HashMap<String, u64>,
    pub(crate) generation: u64,
}

/// The conformance fixtures.
#[derive(Clone)]
pub(crate) struct ConformanceServer {
    pub(crate) tool_router: ToolRouter<Self>,
    pub(crate) prompt_router: PromptRouter<Self>,
    pub(crate) sessions: Addr<McpSessions>,
    pub(crate) state: Arc<Mutex<SessionState>>,
}

impl std::fmt::Debug for ConformanceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConformanceServer")
    }
}

impl ConformanceServer {
    pub(crate) fn new(sessions: Addr<McpSessions>) -> Self {
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

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `notifications/message` if `level` passes the session's `logging/setLevel`, on
    /// the POST stream of the call (`oauth_mcp::mcp::notify_log`), so a client that never
    /// opens the GET stream still gets it.
    pub(crate) async fn log(
        &self,
        ctx: &RequestContext<RoleServer>,
        level: LoggingLevel,
        message: &str,
    ) {
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
    pub(crate) async fn elicit(
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
}
