//! Reading `GET /metrics`: the Prometheus text and one sample of it.

use super::{Reply, TestApp};

/// `GET /metrics`, asserting 200: the Prometheus text.
pub async fn scrape(app: &TestApp) -> String {
    let reply = Reply::read(
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// The value of the sample line `name{labels}` in a scrape, or 0 when absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().expect("numeric sample"))
}
