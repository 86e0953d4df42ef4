//! Repeated registrations (issue 13): an identical public-client registration from the same
//! address within 24 hours answers the client registered first, and neither the
//! per-address limit nor the global bound counts it; anything else registers a new client.

use super::*;

/// A public client as a hosted MCP client registers it, again on every session.
fn hosted(redirect_uri: &str) -> Value {
    json!({
        "client_name": "Hosted",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

const CB: &str = "https://hosted.example/cb";

#[actix_web::test]
async fn an_identical_public_registration_answers_the_same_client() {
    let app = spawn_app().await;

    let first = register(&app, &hosted(CB)).await;
    app.clock.advance(Duration::from_secs(3600));
    let second = register(&app, &hosted(CB)).await;

    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(second.status, 201, "{}", second.body);
    assert_eq!(
        second.json(),
        first.json(),
        "same client_id, client_id_issued_at and effective metadata"
    );
    assert_no_store(&second);
}

#[actix_web::test]
async fn the_per_address_limit_counts_distinct_clients() {
    let app = spawn_app_with(|c| c.registrations_per_hour = 1).await;

    let first = app.register_ok(&hosted(CB)).await;
    let repeat = register(&app, &hosted(CB)).await;
    let other = register(&app, &hosted("https://hosted.example/other")).await;

    assert_eq!(
        repeat.status, 201,
        "a repeat is not counted: {}",
        repeat.body
    );
    assert_eq!(
        str_field(&repeat.json(), "client_id"),
        str_field(&first, "client_id")
    );
    assert_oauth_error(&other, 429, "temporarily_unavailable");
}

#[actix_web::test]
async fn a_repeat_does_not_count_against_the_global_bound() {
    let app = spawn_app_with(|c| c.max_registered_clients = 1).await;

    let first = app.register_ok(&hosted(CB)).await;
    let repeat = register(&app, &hosted(CB)).await;
    let other = register(&app, &hosted("https://hosted.example/other")).await;

    assert_eq!(repeat.status, 201, "{}", repeat.body);
    assert_eq!(
        str_field(&repeat.json(), "client_id"),
        str_field(&first, "client_id")
    );
    assert_oauth_error(&other, 503, "temporarily_unavailable");
}

#[actix_web::test]
async fn an_identical_confidential_registration_gets_a_new_client() {
    let app = spawn_app().await;
    let mut request = hosted(CB);
    request["token_endpoint_auth_method"] = json!("client_secret_basic");

    let first = app.register_ok(&request).await;
    let second = app.register_ok(&request).await;

    assert_ne!(
        str_field(&first, "client_id"),
        str_field(&second, "client_id")
    );
    assert_ne!(
        str_field(&first, "client_secret"),
        str_field(&second, "client_secret")
    );
}

#[actix_web::test]
async fn different_metadata_gets_a_new_client() {
    let app = spawn_app().await;
    let first = app.register_ok(&hosted(CB)).await;

    let other_uri = app
        .register_ok(&hosted("https://hosted.example/other"))
        .await;
    let mut named = hosted(CB);
    named["client_name"] = json!("Hosted 2");
    let other_name = app.register_ok(&named).await;

    let id = str_field(&first, "client_id");
    assert_ne!(str_field(&other_uri, "client_id"), id);
    assert_ne!(str_field(&other_name, "client_id"), id);
}

#[actix_web::test]
async fn a_removed_client_is_not_answered_again() {
    let app = spawn_app_with(|c| c.unused_client_ttl = Duration::from_secs(2 * 3600)).await;
    let first = app.register_ok(&hosted(CB)).await;

    // Never issued a token, it is swept after its TTL, well within the 24 hours.
    app.clock.advance(Duration::from_secs(2 * 3600 + 1));
    assert_eq!(app.sweep_clients().await, 1);
    let again = app.register_ok(&hosted(CB)).await;

    assert_ne!(
        str_field(&again, "client_id"),
        str_field(&first, "client_id")
    );
    let repeat = app.register_ok(&hosted(CB)).await;
    assert_eq!(
        str_field(&repeat, "client_id"),
        str_field(&again, "client_id")
    );
}

#[actix_web::test]
async fn a_repeat_after_24_hours_gets_a_new_client() {
    let app = spawn_app().await;
    let first = app.register_ok(&hosted(CB)).await;

    app.clock.advance(Duration::from_secs(24 * 3600 - 1));
    let within = app.register_ok(&hosted(CB)).await;
    app.clock.advance(Duration::from_secs(1));
    let after = app.register_ok(&hosted(CB)).await;

    assert_eq!(
        str_field(&within, "client_id"),
        str_field(&first, "client_id")
    );
    assert_ne!(
        str_field(&after, "client_id"),
        str_field(&first, "client_id")
    );
}
