//! A minimal HTTP/1.1 keep-alive client for load generation: one TCP connection per virtual
//! user, requests written in one `write`, responses parsed by hand (Content-Length or
//! chunked). A general-purpose client would cost more CPU per request than the server under
//! test, and the generator shares the machine with it.

use std::io;

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// A parsed response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The whole body (chunked bodies de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Every `Set-Cookie` as `name=value`.
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .filter_map(|(_, v)| v.split(';').next().map(str::to_owned))
            .collect()
    }
}

/// One keep-alive connection.
#[derive(Debug)]
pub struct Conn {
    addr: String,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

impl Conn {
    /// A connection to `addr` (`host:port`); `host` is sent as the `Host` header.
    pub fn new(addr: &str, host: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            host: host.to_owned(),
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
            out: Vec::with_capacity(4 * 1024),
        }
    }

    /// The `host:port` this connection goes to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A new connection to the same address (the old one is dropped by the caller: after a
    /// timeout its stream may still carry the late answer).
    pub fn fresh(&self) -> Self {
        Self::new(&self.addr, &self.host)
    }

    /// Sends one request and reads the whole response. Reconnects if the server closed the
    /// connection.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.out.clear();
        self.out.extend_from_slice(
            format!(
                "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n",
                self.host,
                body.len()
            )
            .as_bytes(),
        );
        for (k, v) in headers {
            self.out.extend_from_slice(k.as_bytes());
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(v.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        for attempt in 0..2 {
            if self.stream.is_none() {
                let s = TcpStream::connect(&self.addr).await?;
                s.set_nodelay(true)?;
                self.stream = Some(s);
                self.buf.clear();
            }
            match self.exchange().await {
                Ok(r) => return Ok(r),
                // A keep-alive connection the server closed meanwhile: retry once, fresh.
                Err(e) if attempt == 0 && e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.stream = None;
                }
                Err(e) => {
                    self.stream = None;
                    return Err(e);
                }
            }
        }
        Err(invalid("unreachable"))
    }

    async fn fill(&mut self) -> io::Result<()> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| invalid("not connected"))?;
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(())
    }

    async fn exchange(&mut self) -> io::Result<Response> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| invalid("not connected"))?;
        stream.write_all(&self.out).await?;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill().await?;
        };
        let head =
            String::from_utf8_lossy(self.buf.get(..head_end).unwrap_or_default()).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| invalid("bad status line"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let close = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let body = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            self.read_chunked().await?
        } else {
            let len = get("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            while self.buf.len() < len {
                self.fill().await?;
            }
            self.buf.drain(..len).collect()
        };
        if close {
            self.stream = None;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                self.fill().await?;
            };
            let size_text =
                String::from_utf8_lossy(self.buf.get(..line_end).unwrap_or_default()).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| invalid("bad chunk size"))?;
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
