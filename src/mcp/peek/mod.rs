//! The bearer guard's reading of a JSON-RPC POST body (Streamable HTTP: one JSON-RPC
//! message per POST): just enough to take the authorization decisions before rmcp
//! dispatches the message (which method, which tool, resource or prompt it names, and the
//! `initialize` details recorded with a new session).
//!
//! Why it is strict about the shape and lenient about everything else: the guard's decision
//! must hold for exactly what rmcp will dispatch. rmcp ignores members it does not know, so
//! this reader does too, whatever their types; an odd member must never make the reading
//! fail *and* the check be skipped (issue 11: an extra member of an unexpected type in
//! `params` let a read-only token run a write tool). Conversely, anything on which two
//! JSON parsers could disagree is refused outright, so the guard answers 400 rather than
//! guessing what rmcp will see:
//!
//! - invalid JSON, trailing data, a top-level value that is not an object (batches
//!   included: JSON-RPC batching is not part of any protocol version we serve);
//! - a duplicate key in any object at any depth (RFC 8259 §4 leaves their meaning to the
//!   parser: serde_json's `Value` keeps the last, serde's flattened structs the first);
//! - nesting deeper than [`MAX_DEPTH`] (bounded recursion: no stack exhaustion);
//! - a `method` that is not a string, and a request naming a tool, resource or prompt
//!   whose `params.name` / `params.uri` is missing or not a string.
//!
//! The walk allocates only the captured strings and one key set per object, and touches
//! each byte once.

use std::{borrow::Cow, collections::HashSet, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Deepest nesting of arrays and objects accepted (serde_json's own default limit, which
/// rmcp's parse also has, is 128).
pub const MAX_DEPTH: usize = 128;

/// What a request asks for that may need scopes beyond the endpoint's base scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// A tool (`tools/call`, by `params.name`).
    Tool,
    /// A resource (`resources/read`, `resources/subscribe`, `skills/get`,
    /// `resources/directory/read`, by `params.uri`).
    Resource,
    /// A prompt (`prompts/get`, by `params.name`).
    Prompt,
}

impl TargetKind {
    /// The kind of thing `method` names, if any.
    pub fn of_method(method: &str) -> Option<Self> {
        match method {
            "tools/call" => Some(Self::Tool),
            "resources/read"
            | "resources/subscribe"
            | "skills/get"
            | "resources/directory/read" => Some(Self::Resource),
            "prompts/get" => Some(Self::Prompt),
            _ => None,
        }
    }

    /// "tool", "resource" or "prompt".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Resource => "resource",
            Self::Prompt => "prompt",
        }
    }
}

/// The thing a request names: its kind and its name (or URI).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Tool, resource or prompt.
    pub kind: TargetKind,
    /// The tool or prompt name, or the resource URI, as the JSON string decodes.
    pub name: String,
}

/// A JSON value the reader captured: absent, a string, or anything else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Field {
    #[default]
    Absent,
    Str(String),
    Other,
}

impl Field {
    fn into_string(self) -> Option<String> {
        match self {
            Self::Str(s) => Some(s),
            Self::Absent | Self::Other => None,
        }
    }
}

/// The members the reader captures. Each is read only where it belongs (top level,
/// `params`, `params.clientInfo`); members anywhere else are only walked.
#[derive(Debug, Default)]
struct Fields {
    is_object: bool,
    method: Field,
    params_is_object: bool,
    name: Field,
    uri: Field,
    protocol_version: Field,
    client_name: Field,
    client_version: Field,
}

/// What the guard learnt from a body it could read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peek {
    /// The JSON-RPC method; `None` for a response or error sent by the client.
    pub method: Option<String>,
    /// The tool, resource or prompt the method names, if it names one.
    pub target: Option<Target>,
    /// `params.protocolVersion` of an `initialize`, when it is a string.
    pub protocol_version: Option<String>,
    /// `params.clientInfo` `name` and `version` of an `initialize`, when they are strings.
    pub client_info: Option<String>,
}

impl Peek {
    /// True for an `initialize` request.
    pub fn is_initialize(&self) -> bool {
        self.method.as_deref() == Some("initialize")
    }
}

/// Why a body could not be read far enough to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeekError {
    /// Not JSON, trailing data, a duplicate key, or nesting too deep.
    Json(String),
    /// The top-level value is not a JSON object (an array is a batch).
    NotAnObject,
    /// `method` is present but not a string.
    MethodNotAString,
    /// A method naming a tool, resource or prompt without it as a string in `params`.
    MissingTarget(TargetKind),
}

impl fmt::Display for PeekError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "the body is not readable JSON: {e}"),
            Self::NotAnObject => f.write_str("the body must be one JSON-RPC message (an object)"),
            Self::MethodNotAString => f.write_str("method must be a string"),
            Self::MissingTarget(TargetKind::Resource) => f.write_str("params.uri must be a string"),
            Self::MissingTarget(TargetKind::Tool | TargetKind::Prompt) => {
                f.write_str("params.name must be a string")
            }
        }
    }
}

impl std::error::Error for PeekError {}

/// Reads a JSON-RPC POST body as described in the module docs.
pub fn peek(body: &[u8]) -> Result<Peek, PeekError> {
    let mut fields = Fields::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    Walk {
        depth: 0,
        capture: Capture::Message(&mut fields),
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| PeekError::Json(e.to_string()))?;
    if !fields.is_object {
        return Err(PeekError::NotAnObject);
    }
    let method = match fields.method {
        Field::Absent => None,
        Field::Str(m) => Some(m),
        Field::Other => return Err(PeekError::MethodNotAString),
    };
    let kind = method.as_deref().and_then(TargetKind::of_method);
    let target = match kind {
        None => None,
        Some(kind) => {
            let field = match kind {
                TargetKind::Resource => fields.uri,
                TargetKind::Tool | TargetKind::Prompt => fields.name,
            };
            match (fields.params_is_object, field) {
                (true, Field::Str(name)) => Some(Target { kind, name }),
                _ => return Err(PeekError::MissingTarget(kind)),
            }
        }
    };
    let (protocol_version, client_info) = if method.as_deref() == Some("initialize") {
        let name = fields.client_name.into_string();
        let version = fields.client_version.into_string();
        let info = (name.is_some() || version.is_some()).then(|| {
            format!(
                "{} {}",
                name.unwrap_or_default(),
                version.unwrap_or_default()
            )
            .trim()
            .to_owned()
        });
        (fields.protocol_version.into_string(), info)
    } else {
        (None, None)
    };
    Ok(Peek {
        method,
        target,
        protocol_version,
        client_info,
    })
}

/// Where in the message the value being walked sits, and what to capture from it.
enum Capture<'a> {
    /// Somewhere not captured: only walked.
    Nothing,
    /// The message itself (top level).
    Message(&'a mut Fields),
    /// `params`.
    Params(&'a mut Fields),
    /// `params.clientInfo`.
    ClientInfo(&'a mut Fields),
    /// A member whose value is captured if it is a string.
    Text(&'a mut Field),
}

impl Capture<'_> {
    /// A value that is not a string arrived: a captured member becomes `Other`.
    fn not_a_string(self) {
        if let Self::Text(field) = self {
            *field = Field::Other;
        }
    }
}

/// Walks one JSON value, checking depth and duplicate keys, capturing what its position
/// asks for.
struct Walk<'a> {
    depth: usize,
    capture: Capture<'a>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom("nesting too deep"));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.capture.not_a_string();
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.capture.not_a_string();
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.capture.not_a_string();
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.capture.not_a_string();
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.capture.not_a_string();
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.capture.not_a_string();
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if let Capture::Text(field) = self.capture {
            *field = Field::Str(v.to_owned());
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.depth + 1;
        self.capture.not_a_string();
        while seq
            .next_element_seed(Walk {
                depth,
                capture: Capture::Nothing,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let depth = self.depth + 1;
        let mut capture = self.capture;
        match &mut capture {
            Capture::Message(f) => f.is_object = true,
            Capture::Params(f) => f.params_is_object = true,
            Capture::Text(field) => **field = Field::Other,
            Capture::ClientInfo(_) | Capture::Nothing => {}
        }
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let child = match (&mut capture, key.as_ref()) {
                (Capture::Message(f), "method") => Capture::Text(&mut f.method),
                (Capture::Message(f), "params") => Capture::Params(f),
                (Capture::Params(f), "name") => Capture::Text(&mut f.name),
                (Capture::Params(f), "uri") => Capture::Text(&mut f.uri),
                (Capture::Params(f), "protocolVersion") => Capture::Text(&mut f.protocol_version),
                (Capture::Params(f), "clientInfo") => Capture::ClientInfo(f),
                (Capture::ClientInfo(f), "name") => Capture::Text(&mut f.client_name),
                (Capture::ClientInfo(f), "version") => Capture::Text(&mut f.client_version),
                _ => Capture::Nothing,
            };
            // Checked before the value is walked, so `child` may borrow `capture`.
            if seen.contains(key.as_ref()) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {:?}",
                    truncate(&key)
                )));
            }
            map.next_value_seed(Walk {
                depth,
                capture: child,
            })?;
            seen.insert(key);
        }
        Ok(())
    }
}

/// At most 64 characters of a key, for an error message.
fn truncate(key: &str) -> &str {
    key.char_indices()
        .nth(64)
        .and_then(|(i, _)| key.get(..i))
        .unwrap_or(key)
}

/// An object key, borrowed from the body when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The tool, resource or prompt rmcp itself finds in `body`, by its own parse: what it
/// would dispatch. `None` when rmcp would not dispatch a request naming one. For tests and
/// the differential fuzz target: whenever this is `Some`, [`peek`] must find the same.
pub fn rmcp_target(body: &[u8]) -> Option<Target> {
    use rmcp::model::{ClientJsonRpcMessage, ClientRequest};
    let ClientJsonRpcMessage::Request(req) =
        serde_json::from_slice::<ClientJsonRpcMessage>(body).ok()?
    else {
        return None;
    };
    let (kind, name) = match req.request {
        ClientRequest::CallToolRequest(r) => (TargetKind::Tool, r.params.name.into_owned()),
        ClientRequest::GetPromptRequest(r) => (TargetKind::Prompt, r.params.name),
        ClientRequest::ReadResourceRequest(r) => (TargetKind::Resource, r.params.uri),
        ClientRequest::SubscribeRequest(r) => (TargetKind::Resource, r.params.uri),
        ClientRequest::GetSkillRequest(r) => (TargetKind::Resource, r.params.uri),
        ClientRequest::ReadResourceDirectoryRequest(r) => (TargetKind::Resource, r.params.uri),
        _ => return None,
    };
    Some(Target { kind, name })
}

#[cfg(test)]
mod tests;
