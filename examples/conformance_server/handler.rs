//! The `ServerHandler` of the fixtures: server info and protocol versions, resources and the
//! resource template, subscriptions with their update notifications, completions and
//! `logging/setLevel`; tools and prompts are routed to `tools` and `prompts`.

use std::sync::{Arc, PoisonError};

use oauth_mcp::rmcp::{
    self,
    model::{
        CompleteRequestParams, CompleteResult, CompletionInfo, Implementation,
        ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Reference, Resource,
        ResourceContents, ResourceTemplate, ResourceUpdatedNotificationParam, ServerCapabilities,
        ServerConfig, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
    },
    prompt_handler,
    service::RequestContext,
    tool_handler, ErrorData as McpError, RoleServer, ServerHandler,
};
use serde_json::Value;

use crate::{fixtures::*, server::*};

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
