//! [`Scoped`]: the dispatch-side backstop of per-tool, per-resource and per-prompt scopes.
//!
//! The bearer guard decides from its own reading of the HTTP body (see [`super::peek`]) and
//! answers 403 with a step-up challenge. This wrapper decides again from what rmcp actually
//! dispatches (its typed parse of the request) and the verified [`Caller`] the guard put in
//! the request extensions: a call with no verified caller, or whose caller lacks the base
//! scopes or the target's scopes, is refused with a JSON-RPC error and never reaches the
//! wrapped handler. So a differential between the two parsers, a route that skipped the
//! guard, or a future change to either cannot turn into running a tool the token may not
//! run (fail closed). [`McpEndpoint`](super::McpEndpoint) wraps every handler it serves,
//! an embedder's included; a host serving a handler through another rmcp transport can
//! wrap it with [`Scoped::new`] itself (it must then put a [`Caller`] where [`caller`]
//! finds it, or every scoped call is refused).
//!
//! Every other `ServerHandler` method is forwarded unchanged, so the wrapped handler behaves
//! exactly as it would unwrapped (capabilities, protocol versions, tool lookup).

// `set_level`, `subscribe` and `unsubscribe` and their parameter types are deprecated by
// SEP-2577 but still part of the session-based protocol versions served.
#![allow(deprecated)]

use std::{borrow::Cow, future::Future};

use rmcp::{
    model::{
        CallToolRequestParams, CallToolResponse, CancelTaskParams, CancelledNotificationParam,
        CompleteRequestParams, CompleteResult, CustomNotification, CustomRequest, CustomResult,
        DiscoverResult, GetPromptRequestParams, GetPromptResponse, GetSkillRequestParams,
        GetSkillResult, GetTaskParams, GetTaskResult, InitializeRequestParams, InitializeResult,
        ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListSkillsResult,
        ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion,
        ReadResourceDirectoryRequestParams, ReadResourceDirectoryResult, ReadResourceRequestParams,
        ReadResourceResponse, ServerConfig, SetLevelRequestParams, SubscribeRequestParams,
        SubscriptionFilter, Tool, UnsubscribeRequestParams, UpdateTaskParams,
    },
    service::{MaybeSendFuture, NotificationContext, RequestContext, SubscriptionContext},
    ErrorData as McpError, RoleServer, ServerHandler,
};

use super::{caller, Caller, TargetKind, ToolScopes};
use crate::domain::scope::Scopes;

/// A `ServerHandler` that checks the caller's scopes before `inner` serves a request naming
/// a tool, resource or prompt (see the module docs).
#[derive(Debug, Clone)]
pub struct Scoped<S> {
    inner: S,
    scopes: ToolScopes,
    base: Scopes,
}

impl<S> Scoped<S> {
    /// `inner`, requiring `base` for every scoped request and `scopes` per target.
    pub fn new(inner: S, scopes: ToolScopes, base: Scopes) -> Self {
        Self {
            inner,
            scopes,
            base,
        }
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Refuses unless the verified caller of `ctx` may use `kind` `name`.
    pub fn authorize(
        &self,
        ctx: &RequestContext<RoleServer>,
        kind: TargetKind,
        name: &str,
    ) -> Result<Caller, McpError> {
        let Some(caller) = caller(ctx) else {
            tracing::warn!(
                kind = kind.as_str(),
                name = ?for_log(name),
                "MCP request without a verified caller refused at dispatch"
            );
            return Err(McpError::invalid_request(
                "the request carries no verified caller",
                None,
            ));
        };
        match self.scopes.check(&self.base, &caller.scopes, kind, name) {
            Ok(()) => Ok(caller),
            Err(wanted) => {
                // The guard answers 403 before rmcp sees such a request; getting here means
                // its reading and rmcp's differed, or it was bypassed.
                tracing::warn!(
                    kind = kind.as_str(),
                    name = ?for_log(name),
                    "MCP request lacking scopes refused at dispatch"
                );
                Err(McpError::invalid_request(
                    format!(
                        "insufficient_scope: this {} needs scopes the access token lacks",
                        kind.as_str()
                    ),
                    Some(serde_json::json!({
                        "error": "insufficient_scope",
                        "scope": wanted.to_string(),
                    })),
                ))
            }
        }
    }
}

/// At most 100 characters of a client-chosen name, for a log line (printed with `Debug`, so
/// control characters are escaped).
fn for_log(name: &str) -> &str {
    name.char_indices()
        .nth(100)
        .and_then(|(i, _)| name.get(..i))
        .unwrap_or(name)
}

impl<S: ServerHandler> ServerHandler for Scoped<S> {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.authorize(&context, TargetKind::Tool, &request.name)?;
        self.inner.call_tool(request, context).await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        self.authorize(&context, TargetKind::Resource, &request.uri)?;
        self.inner.read_resource(request, context).await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.authorize(&context, TargetKind::Resource, &request.uri)?;
        self.inner.subscribe(request, context).await
    }

    async fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetSkillResult, McpError> {
        self.authorize(&context, TargetKind::Resource, &request.uri)?;
        self.inner.get_skill(request, context).await
    }

    async fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceDirectoryResult, McpError> {
        self.authorize(&context, TargetKind::Resource, &request.uri)?;
        self.inner.read_resource_directory(request, context).await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        self.authorize(&context, TargetKind::Prompt, &request.name)?;
        self.inner.get_prompt(request, context).await
    }

    // Everything else is forwarded unchanged.

    fn ping(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.ping(context)
    }

    fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<InitializeResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.initialize(request, context)
    }

    fn negotiate_initialize(
        &self,
        request: &InitializeRequestParams,
    ) -> Result<InitializeResult, McpError> {
        self.inner.negotiate_initialize(request)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<DiscoverResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.discover(context)
    }

    fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CompleteResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.complete(request, context)
    }

    fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.set_level(request, context)
    }

    fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListPromptsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_prompts(request, context)
    }

    fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourcesResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_resources(request, context)
    }

    fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourceTemplatesResult, McpError>> + MaybeSendFuture + '_
    {
        self.inner.list_resource_templates(request, context)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    /// `subscriptions/listen` (2026-07-28) names resources in its filter: each accepted
    /// resource subscription needs the scopes `resources/read` of that URI needs, or the
    /// subscription ends with the same error before any notification is sent (the SDK has
    /// already acknowledged it by then; `accepted_subscription_filter` sees no caller).
    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let uris = context.accepted().resource_subscriptions.clone();
        for uri in uris.iter().flatten() {
            self.authorize(context.request_context(), TargetKind::Resource, uri)?;
        }
        self.inner.listen(context).await
    }

    fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.unsubscribe(request, context)
    }

    fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListToolsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_tools(request, context)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.get_tool(name)
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CustomResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.on_custom_request(request, context)
    }

    fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_cancelled(notification, context)
    }

    fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_progress(notification, context)
    }

    fn on_initialized(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_initialized(context)
    }

    fn on_roots_list_changed(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_roots_list_changed(context)
    }

    fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_custom_notification(notification, context)
    }

    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetTaskResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_task(request, context)
    }

    fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.update_task(request, context)
    }

    fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.cancel_task(request, context)
    }

    fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListSkillsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_skills(request, context)
    }
}
