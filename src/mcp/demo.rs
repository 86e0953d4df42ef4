//! The tools, resource and prompt the default server offers: enough to try every part of
//! the flow, including scope step-up (`sign_guestbook` needs `mcp:write`).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
};

use rmcp::{
    handler::server::{
        router::{prompt::PromptRouter, tool::ToolRouter},
        wrapper::Parameters,
    },
    model::{
        CallToolResult, ContentBlock, Implementation, ListResourcesResult, PaginatedRequestParams,
        PromptMessage, ReadResourceRequestParams, ReadResourceResult, Resource, ResourceContents,
        Role, ServerCapabilities, ServerConfig,
    },
    prompt, prompt_handler, prompt_router, schemars,
    service::RequestContext,
    tool, tool_handler, tool_router, ErrorData as McpError, RoleServer, ServerHandler,
};
use serde::Deserialize;

use super::{caller, ToolScopes};

/// The scope `sign_guestbook` needs.
pub const WRITE_SCOPE: &str = "mcp:write";
/// URI of the server-info resource.
pub const INFO_URI: &str = "oauth-mcp://server/info";
const GUESTBOOK_LIMIT: usize = 100;

/// Per-tool scope requirements of the demo server.
pub fn tool_scopes() -> ToolScopes {
    ToolScopes::new().require("sign_guestbook", [WRITE_SCOPE])
}

/// Arguments of `add`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AddArgs {
    /// First addend.
    pub a: f64,
    /// Second addend.
    pub b: f64,
}

/// Arguments of `echo`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Text to send back.
    pub text: String,
}

/// Arguments of `sign_guestbook`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SignArgs {
    /// The message to leave (at most 280 characters).
    pub message: String,
}

/// Arguments of the `greet` prompt.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GreetArgs {
    /// Who to greet.
    pub name: String,
}

/// The shared guestbook: the last 100 signatures, in memory (demo state, lost on restart).
pub type Guestbook = Arc<Mutex<VecDeque<String>>>;

/// The default MCP server. rmcp asks for one per session, and on the stateless path
/// (2026-07-28) per request: clone one built once, which shares its routers (building them
/// generates every tool's JSON schema, which costs more than the call) and the guestbook.
#[derive(Clone)]
pub struct DemoServer {
    tool_router: Arc<ToolRouter<Self>>,
    prompt_router: Arc<PromptRouter<Self>>,
    guestbook: Guestbook,
}

impl std::fmt::Debug for DemoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DemoServer")
    }
}

fn text(s: impl Into<String>) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::success(vec![ContentBlock::text(s.into())]))
}

#[tool_router]
impl DemoServer {
    /// A server sharing `guestbook` with the others of this process.
    pub fn new(guestbook: Guestbook) -> Self {
        Self {
            tool_router: Arc::new(Self::tool_router()),
            prompt_router: Arc::new(Self::prompt_router()),
            guestbook,
        }
    }

    #[tool(
        description = "Who am I? Returns the caller's subject, OAuth client and token scopes. Requires scope: mcp:read."
    )]
    async fn whoami(&self, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, McpError> {
        let Some(c) = caller(&ctx) else {
            return Ok(CallToolResult::error(vec![ContentBlock::text(
                "no authenticated caller",
            )]));
        };
        let body = serde_json::json!({
            "subject": c.subject,
            "client_id": c.client_id,
            "scopes": c.scopes.iter().collect::<Vec<_>>(),
        });
        text(body.to_string())
    }

    #[tool(description = "Adds two numbers. Requires scope: mcp:read.")]
    async fn add(&self, Parameters(args): Parameters<AddArgs>) -> Result<CallToolResult, McpError> {
        text((args.a + args.b).to_string())
    }

    #[tool(description = "Returns the given text unchanged. Requires scope: mcp:read.")]
    async fn echo(
        &self,
        Parameters(args): Parameters<EchoArgs>,
    ) -> Result<CallToolResult, McpError> {
        text(args.text)
    }

    #[tool(
        description = "Signs the guestbook with a message. Requires scope: mcp:write (a token with only mcp:read gets HTTP 403 insufficient_scope, so the client can step up)."
    )]
    async fn sign_guestbook(
        &self,
        Parameters(args): Parameters<SignArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        if args.message.chars().count() > 280 {
            return Ok(CallToolResult::error(vec![ContentBlock::text(
                "message longer than 280 characters",
            )]));
        }
        let who = caller(&ctx)
            .map(|c| c.subject.unwrap_or(c.client_id))
            .unwrap_or_else(|| "anonymous".into());
        let line = format!("{who}: {}", args.message);
        let mut book = self
            .guestbook
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if book.len() == GUESTBOOK_LIMIT {
            book.pop_front();
        }
        book.push_back(line);
        text(format!("signed; the guestbook has {} entries", book.len()))
    }

    #[tool(
        description = "Reads the guestbook (the last 100 signatures). Requires scope: mcp:read."
    )]
    async fn read_guestbook(&self) -> Result<CallToolResult, McpError> {
        let book = self
            .guestbook
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if book.is_empty() {
            return text("the guestbook is empty");
        }
        text(book.iter().cloned().collect::<Vec<_>>().join("\n"))
    }
}

#[prompt_router]
#[expect(
    missing_docs,
    reason = "the #[prompt] macro generates an undocumented attribute function"
)]
impl DemoServer {
    /// Asks the model to greet someone.
    #[prompt(name = "greet", description = "A friendly greeting for someone")]
    async fn greet(&self, Parameters(args): Parameters<GreetArgs>) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!("Please write a short, friendly greeting for {}.", args.name),
        )]
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .build();
        ServerConfig::new(caps)
            .with_server_info(Implementation::new("oauth-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions("Demo tools of oauth-mcp. sign_guestbook needs the mcp:write scope.")
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let info = Resource::new(INFO_URI, "server-info")
            .with_description("What this server is and which scopes it knows")
            .with_mime_type("application/json");
        Ok(ListResourcesResult::with_all_items(vec![info]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, McpError> {
        if request.uri != INFO_URI {
            return Err(McpError::resource_not_found("unknown resource", None));
        }
        let body = serde_json::json!({
            "name": "oauth-mcp",
            "version": env!("CARGO_PKG_VERSION"),
            "scopes": {"mcp:read": "use the tools", "mcp:write": "sign the guestbook"},
        });
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(body.to_string(), INFO_URI).with_mime_type("application/json")
        ])
        .into())
    }

    fn supported_protocol_versions(
        &self,
    ) -> std::borrow::Cow<'static, [rmcp::model::ProtocolVersion]> {
        super::endpoint::supported_protocol_versions()
    }
}

impl Default for DemoServer {
    fn default() -> Self {
        Self::new(Arc::default())
    }
}
