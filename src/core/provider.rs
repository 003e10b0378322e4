//! [`Provider`]: the one shape every upstream wire format has. The failover loop drives a target
//! through it (behind [`PreparedRequest`]'s vtable) — prepare once, then for each key: build the
//! call, judge a failure, translate a success — and knows nothing else about any provider.
//! Implementations are pure translation; I/O stays in the hosts.

use bytes::Bytes;

use crate::core::error::{ErrorObject, ProxyError};
use crate::core::host::{BindingCall, UpstreamRequest};
use crate::core::request::ChatRequest;
use crate::core::route::Target;
use crate::core::stream::Translate;
use crate::core::verdict::UpstreamError;

/// An upstream body written as JSON.
pub fn json_body(value: &impl serde::Serialize) -> Bytes {
    // Serialising in-memory JSON values and plain structs cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// Reads a secret by name (the host's [`secret`](crate::core::host::Host::secret)).
pub type SecretLookup<'a> = &'a dyn Fn(&str) -> Option<std::rc::Rc<str>>;

/// Why a target cannot be tried for this request.
#[derive(Debug)]
pub enum PrepareError {
    /// The request cannot be expressed in this wire format: the client's error, answered now.
    Invalid(ProxyError),
    /// A secret the target needs besides its keys is not set: the target is skipped.
    SecretNotSet(&'static str),
}

impl From<ProxyError> for PrepareError {
    fn from(error: ProxyError) -> Self {
        PrepareError::Invalid(error)
    }
}

/// An upstream wire format, implemented once per format in `crate::providers` and bound to
/// routes.toml's targets by the generated routing table.
pub trait Provider: 'static {
    /// What [`prepare`](Provider::prepare) decided for one request on one target: the upstream
    /// body and every fact the later steps read (streamed or not, JSON mode, token budget, ...).
    type Prepared: 'static;

    /// Translates the client's request for `target`, once; the result serves every key.
    /// `secret` reads what the target needs besides its keys (an account id in the URL).
    fn prepare(
        target: &'static Target,
        request: &ChatRequest,
        secret: SecretLookup<'_>,
    ) -> Result<Self::Prepared, PrepareError>;

    /// The HTTP request that sends `prepared` with one API key (its value).
    fn request(target: &'static Target, prepared: &Self::Prepared, key: &str) -> UpstreamRequest;

    /// The binding call that sends `prepared`, for a provider a host binding can reach.
    fn binding_call(target: &'static Target, prepared: &Self::Prepared) -> Option<BindingCall> {
        let _ = (target, prepared);
        None
    }

    /// Reads a non-2xx answer: the status it stands for, the client's error, and whether it
    /// rejects the key.
    fn failure(prepared: &Self::Prepared, status: u16, body: &[u8]) -> UpstreamError;

    /// Reads what a binding threw (its text).
    fn thrown(prepared: &Self::Prepared, message: &str) -> UpstreamError {
        let _ = prepared;
        UpstreamError::answered(502, ErrorObject::for_status(message, 502, None))
    }

    /// Whether [`translator`](Provider::translator) already writes the request's front-door
    /// shape (an Anthropic Messages request passed through to Anthropic), so the core must not
    /// translate its output back from OpenAI's.
    fn speaks_front(prepared: &Self::Prepared) -> bool {
        let _ = prepared;
        false
    }

    /// The call that counts `prepared`'s input tokens with one key, where the provider has
    /// such an endpoint (`/v1/messages/count_tokens`); `None` leaves the count to the proxy's
    /// estimate.
    fn count_request(
        target: &'static Target,
        prepared: &Self::Prepared,
        key: &str,
    ) -> Option<UpstreamRequest> {
        let _ = (target, prepared, key);
        None
    }

    /// The input token count in a 2xx answer to [`count_request`](Provider::count_request).
    fn count_answer(body: &[u8]) -> Option<u64> {
        let _ = body;
        None
    }

    /// The translator of a 2xx body into the client's body; `created` (Unix seconds) is stamped
    /// on what it writes.
    fn translator(
        target: &'static Target,
        prepared: &Self::Prepared,
        created: u64,
    ) -> Box<dyn Translate>;
}

/// [`Provider::prepare`] for one provider, its result behind [`PreparedRequest`]'s vtable: what
/// the generated routing table holds for each target ([`prepare_with`]).
pub type Prepare = fn(
    &'static Target,
    &ChatRequest,
    SecretLookup<'_>,
) -> Result<Box<dyn PreparedRequest>, PrepareError>;

/// [`Provider::prepare`] through `P`, as a [`Prepare`].
pub fn prepare_with<P: Provider>(
    target: &'static Target,
    request: &ChatRequest,
    secret: SecretLookup<'_>,
) -> Result<Box<dyn PreparedRequest>, PrepareError> {
    let prepared = P::prepare(target, request, secret)?;
    Ok(Box::new(PreparedBy::<P>(prepared)))
}

/// A request one provider has prepared, behind a vtable: what the failover loop calls between
/// [`Provider::prepare`] and the client's answer. The loop takes this rather than `P`, and the
/// routing table a [`Prepare`] per target rather than a call to a generic function per target,
/// so that the loop's code (the largest async state machine in the proxy) is compiled once
/// instead of once per target.
pub trait PreparedRequest {
    /// [`Provider::request`].
    fn request(&self, target: &'static Target, key: &str) -> UpstreamRequest;
    /// [`Provider::binding_call`].
    fn binding_call(&self, target: &'static Target) -> Option<BindingCall>;
    /// [`Provider::failure`].
    fn failure(&self, status: u16, body: &[u8]) -> UpstreamError;
    /// [`Provider::thrown`].
    fn thrown(&self, message: &str) -> UpstreamError;
    /// [`Provider::speaks_front`].
    fn speaks_front(&self) -> bool;
    /// [`Provider::count_request`].
    fn count_request(&self, target: &'static Target, key: &str) -> Option<UpstreamRequest>;
    /// [`Provider::count_answer`].
    fn count_answer(&self, body: &[u8]) -> Option<u64>;
    /// [`Provider::translator`].
    fn translator(&self, target: &'static Target, created: u64) -> Box<dyn Translate>;
}

/// What provider `P` prepared, as a [`PreparedRequest`].
struct PreparedBy<P: Provider>(P::Prepared);

impl<P: Provider> PreparedRequest for PreparedBy<P> {
    fn request(&self, target: &'static Target, key: &str) -> UpstreamRequest {
        P::request(target, &self.0, key)
    }

    fn binding_call(&self, target: &'static Target) -> Option<BindingCall> {
        P::binding_call(target, &self.0)
    }

    fn failure(&self, status: u16, body: &[u8]) -> UpstreamError {
        P::failure(&self.0, status, body)
    }

    fn thrown(&self, message: &str) -> UpstreamError {
        P::thrown(&self.0, message)
    }

    fn speaks_front(&self) -> bool {
        P::speaks_front(&self.0)
    }

    fn count_request(&self, target: &'static Target, key: &str) -> Option<UpstreamRequest> {
        P::count_request(target, &self.0, key)
    }

    fn count_answer(&self, body: &[u8]) -> Option<u64> {
        P::count_answer(body)
    }

    fn translator(&self, target: &'static Target, created: u64) -> Box<dyn Translate> {
        P::translator(target, &self.0, created)
    }
}
