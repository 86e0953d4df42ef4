//! The suite's prompt fixtures (`prompts/list`, `prompts/get`): a simple prompt, one with
//! arguments, one with an embedded resource and one with an image.

use oauth_mcp::rmcp::{
    self,
    handler::server::wrapper::Parameters,
    model::{ContentBlock, PromptMessage, ResourceContents, Role},
    prompt, prompt_router, schemars,
};
use serde::Deserialize;

use crate::{fixtures::*, server::*};

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

#[prompt_router(vis = "pub(crate)")]
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
