//! A local HTTP server standing in for a client's web site, where client ID metadata
//! documents are published (`DocumentHost`): one `Route` per path (status, headers, body, a
//! delay, chunked or not), and a count of the requests each path got. Used by the
//! `client_metadata` tests and by `interop`, which serves the real clients' documents.

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{
    dev::ServerHandle,
    http::StatusCode,
    web::{self, Bytes},
    App, HttpRequest, HttpResponse, HttpServer,
};
use serde_json::Value;

/// What the document host answers on one path.
#[derive(Clone)]
pub struct Route {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(&'static str, String)>,
    /// Response body.
    pub body: Vec<u8>,
    /// How long to wait before answering.
    pub delay: Duration,
    /// Send the body without `Content-Length` (chunked), so only counting can stop it.
    pub chunked: bool,
}

impl Route {
    pub fn json(doc: &Value) -> Self {
        Route {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body: doc.to_string().into_bytes(),
            delay: Duration::ZERO,
            chunked: false,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

#[derive(Default)]
struct HostState {
    routes: HashMap<String, Route>,
    hits: HashMap<String, usize>,
}

/// A local HTTP server standing in for the client's web site.
pub struct DocumentHost {
    pub port: u16,
    state: Arc<Mutex<HostState>>,
    handle: ServerHandle,
}

async fn serve(req: HttpRequest, state: web::Data<Arc<Mutex<HostState>>>) -> HttpResponse {
    let route = {
        let mut state = state.lock().unwrap();
        *state.hits.entry(req.path().to_owned()).or_default() += 1;
        state.routes.get(req.path()).cloned()
    };
    let Some(route) = route else {
        return HttpResponse::NotFound().finish();
    };
    actix_web::rt::time::sleep(route.delay).await;
    let mut response = HttpResponse::build(StatusCode::from_u16(route.status).unwrap());
    for (name, value) in &route.headers {
        response.append_header((*name, value.as_str()));
    }
    if route.chunked {
        let body = Bytes::from(route.body);
        response.streaming(futures_util::stream::once(async move {
            Ok::<_, actix_web::Error>(body)
        }))
    } else {
        response.body(route.body)
    }
}

impl DocumentHost {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(HostState::default()));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(serve))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        DocumentHost {
            port,
            state,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn route(&self, path: &str, route: Route) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_owned(), route);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for DocumentHost {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
