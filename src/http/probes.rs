//! Probes for load balancers and orchestrators: `GET /healthz` (the process serves HTTP)
//! and `GET /readyz` (it can serve requests: on PostgreSQL the database answers and its
//! schema is one this build runs on). Plain text, never cached, no secrets in the answer;
//! not counted in the metrics (a balancer polls them every few seconds).

use actix_web::{http::header, web, HttpResponse};

use crate::services::Services;

/// Mounts `/healthz` and `/readyz`. The binary mounts them; an embedding application may,
/// or may keep probes of its own.
pub fn configure_probes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)));
}

async fn healthz() -> HttpResponse {
    text(HttpResponse::Ok(), "ok\n".to_owned())
}

async fn readyz(services: web::Data<Services>) -> HttpResponse {
    match services.ready().await {
        Ok(()) => text(HttpResponse::Ok(), "ready\n".to_owned()),
        Err(e) => {
            // The reason goes to the log only: the probe is open to anyone who reaches it.
            tracing::warn!(error = %e, "not ready");
            text(HttpResponse::ServiceUnavailable(), "not ready\n".to_owned())
        }
    }
}

fn text(mut builder: actix_web::HttpResponseBuilder, body: String) -> HttpResponse {
    builder
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}
