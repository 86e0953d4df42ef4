//! `GET /healthz` and `GET /readyz` (issue 14: probes for load balancers and orchestrators)
//! on the embedded backend; the PostgreSQL side is in `postgres.rs`.

use crate::helpers::{spawn_app, Reply};

#[actix_web::test]
async fn healthz_and_readyz_answer_plain_text_and_are_never_cached() {
    let app = spawn_app().await;
    for (path, body) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let reply = Reply::read(app.client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(reply.body, body, "{path}");
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
    }
    // Probes are GET only.
    let post = app.client.post(app.url("/readyz")).send().await.unwrap();
    assert_eq!(post.status(), 405);
}
