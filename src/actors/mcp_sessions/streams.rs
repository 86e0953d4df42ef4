//! Stream tracking (only on endpoints built with stream tracking): which HTTP stream carries
//! each JSON-RPC request, the side channel that merges a tool's notifications into its
//! request's POST stream, and closing a request's SSE stream until the client resumes it
//! (SEP-1699).

use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt as _;
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use tokio::sync::{mpsc, oneshot};

use super::McpSessions;

/// Remembers which HTTP stream carries a JSON-RPC request, and its side channel (stream
/// tracking only).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct RecordStream {
    pub(super) id: SessionId,
    pub(super) request_id: String,
    pub(super) http_request_id: u64,
    pub(super) side: mpsc::Sender<ServerSseMessage>,
}

impl Handler<RecordStream> for McpSessions {
    type Result = ();
    fn handle(&mut self, msg: RecordStream, _: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&msg.id) {
            // Finished requests' channels are closed; drop those, and bound the rest.
            entry.side_channels.retain(|_, tx| !tx.is_closed());
            if entry.streams.len() > 1024 || entry.side_channels.len() > 1024 {
                entry.streams.clear();
                entry.side_channels.clear();
            }
            entry
                .streams
                .insert(msg.request_id.clone(), msg.http_request_id);
            entry.side_channels.insert(msg.request_id, msg.side);
        }
    }
}

/// The side channel into a request's POST stream, if the request is still streaming.
#[derive(Debug, Message)]
#[rtype(result = "Option<mpsc::Sender<ServerSseMessage>>")]
pub struct RequestChannel {
    /// The session.
    pub id: SessionId,
    /// The JSON-RPC request id, as JSON text.
    pub request_id: String,
}

impl Handler<RequestChannel> for McpSessions {
    type Result = Option<mpsc::Sender<ServerSseMessage>>;
    fn handle(&mut self, msg: RequestChannel, _: &mut Self::Context) -> Self::Result {
        let tx = self
            .sessions
            .get(&msg.id)?
            .side_channels
            .get(&msg.request_id)?;
        (!tx.is_closed()).then(|| tx.clone())
    }
}

/// A client resumed an HTTP stream with `Last-Event-ID`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct StreamResumed {
    pub(super) id: SessionId,
    pub(super) http_request_id: u64,
}

impl Handler<StreamResumed> for McpSessions {
    type Result = ();
    fn handle(&mut self, msg: StreamResumed, _: &mut Self::Context) {
        if let Some(entry) = self.sessions.get_mut(&msg.id) {
            for waiter in entry
                .resume_waiters
                .remove(&msg.http_request_id)
                .unwrap_or_default()
            {
                let _ = waiter.send(());
            }
        }
    }
}

/// Closes the SSE stream that carries a JSON-RPC request (SEP-1699 server-initiated
/// disconnect) and answers a receiver that fires when the client has resumed it. Needs
/// stream tracking (see [`super::ActorSessionManager::with_stream_tracking`]).
#[derive(Debug, Message)]
#[rtype(result = "Option<oneshot::Receiver<()>>")]
pub struct CloseRequestStream {
    /// The session.
    pub id: SessionId,
    /// The JSON-RPC request id, as JSON text (e.g. `3` or `"abc"`).
    pub request_id: String,
    /// The `retry` hint sent to the client.
    pub retry: Duration,
}

impl Handler<CloseRequestStream> for McpSessions {
    type Result = Option<oneshot::Receiver<()>>;
    fn handle(&mut self, msg: CloseRequestStream, _: &mut Self::Context) -> Self::Result {
        let entry = self.sessions.get_mut(&msg.id)?;
        let http_request_id = *entry.streams.get(&msg.request_id)?;
        let (tx, rx) = oneshot::channel();
        entry
            .resume_waiters
            .entry(http_request_id)
            .or_default()
            .push(tx);
        let handle = entry.listed.handle.clone();
        let retry = msg.retry;
        actix::spawn(async move {
            if let Err(e) = handle.close_sse_stream(http_request_id, Some(retry)).await {
                tracing::debug!(error = %e, "closing request stream failed");
            }
        });
        Some(rx)
    }
}

/// Capacity of a request's side channel.
pub(super) const SIDE_CHANNEL_CAPACITY: usize = 64;

/// Merges a request's side channel into its rmcp stream. The side channel is polled first,
/// so a notification sent before the tool returns goes out before the result; the merged
/// stream ends as soon as rmcp's stream does (the response has been sent), whatever is
/// left in the side channel. Side-channel events carry no event id, so they are not
/// replayed on resumption.
pub(super) fn merge_side_channel<P, S>(
    primary: P,
    side: S,
) -> impl futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static
where
    P: futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
    S: futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
{
    use futures_util::stream::{self, PollNext};
    let primary = primary.map(Some).chain(stream::once(async { None }));
    stream::select_with_strategy(side.map(Some), primary, |_: &mut ()| PollNext::Left)
        .take_while(|m| std::future::ready(m.is_some()))
        .filter_map(std::future::ready)
}
