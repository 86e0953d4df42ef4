//! The per-target scope check of `/mcp` (MCP authorization, "Scope Challenge Handling"): a
//! `tools/call`, `prompts/get` or `resources/read` (and the other methods naming a resource
//! URI) whose tool, prompt or resource needs scopes the token lacks gets 403
//! `insufficient_scope` naming every scope to request, so one step-up is enough.
//! [`crate::mcp::Scoped`] checks the same map again at dispatch.

use actix_web::http::StatusCode;

use crate::{
    domain::scope::Scopes,
    error::Error,
    http::bearer::challenge,
    mcp::{peek::Target, TargetKind, ToolScopes},
};

/// May a caller holding `held` use `target` on an endpoint requiring `base`? Refused with a
/// challenge pointing to `issuer`'s metadata.
pub fn check(
    tool_scopes: &ToolScopes,
    base: &Scopes,
    held: &Scopes,
    target: &Target,
    issuer: &str,
) -> Result<(), Error> {
    let Err(wanted) = tool_scopes.check(base, held, target.kind, &target.name) else {
        return Ok(());
    };
    let description = match target.kind {
        TargetKind::Tool => "this tool needs a scope the access token lacks",
        TargetKind::Resource => "this resource needs a scope the access token lacks",
        TargetKind::Prompt => "this prompt needs a scope the access token lacks",
    };
    Err(challenge(
        issuer,
        StatusCode::FORBIDDEN,
        Some("insufficient_scope"),
        description,
        &wanted,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: TargetKind, name: &str) -> Target {
        Target {
            kind,
            name: name.into(),
        }
    }

    #[test]
    fn a_target_needing_more_is_a_step_up_challenge_naming_everything_to_request() {
        let scopes = ToolScopes::new()
            .require("write", ["mcp:write"])
            .require_resource("x://secret", ["mcp:secret"])
            .require_prompt("p", ["mcp:p"]);
        let base = Scopes::from_names(["mcp:read"]);
        let held = Scopes::from_names(["mcp:read", "profile"]);
        for (kind, name, wanted, word) in [
            (TargetKind::Tool, "write", "mcp:write", "tool"),
            (TargetKind::Resource, "x://secret", "mcp:secret", "resource"),
            (TargetKind::Prompt, "p", "mcp:p", "prompt"),
        ] {
            let Err(Error::Challenge(c)) =
                check(&scopes, &base, &held, &target(kind, name), "http://i")
            else {
                panic!("{name} must be refused");
            };
            assert_eq!(
                (c.status, c.error),
                (StatusCode::FORBIDDEN, Some("insufficient_scope"))
            );
            assert!(c.description.contains(word), "{}", c.description);
            let asked = Scopes::from_names(c.scope.split(' '));
            assert_eq!(asked, Scopes::from_names(["mcp:read", "profile", wanted]));
        }
    }

    #[test]
    fn unlisted_targets_need_the_base_scopes_only_and_names_match_exactly() {
        let scopes = ToolScopes::new().require("write", ["mcp:write"]);
        let base = Scopes::from_names(["mcp:read"]);
        let held = Scopes::from_names(["mcp:read"]);
        assert!(check(&scopes, &base, &held, &target(TargetKind::Tool, "add"), "i").is_ok());
        assert!(check(
            &scopes,
            &base,
            &held,
            &target(TargetKind::Tool, "Write"),
            "i"
        )
        .is_ok());
        assert!(check(
            &scopes,
            &base,
            &held,
            &target(TargetKind::Tool, "write"),
            "i"
        )
        .is_err());
        let writer = Scopes::from_names(["mcp:read", "mcp:write"]);
        assert!(check(
            &scopes,
            &base,
            &writer,
            &target(TargetKind::Tool, "write"),
            "i"
        )
        .is_ok());
        // Without the base scopes nothing passes, listed or not.
        let none = Scopes::default();
        assert!(check(&scopes, &base, &none, &target(TargetKind::Tool, "add"), "i").is_err());
    }
}
