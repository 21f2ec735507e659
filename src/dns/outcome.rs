//! What the answer path tells its transport: how the query came ([`Transport`]), and what
//! happened to it ([`Outcome`]), for the counters and the query log.

use crate::snapshot::ServiceAnswer;

/// How the query arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: responses are limited in size and truncated with TC.
    Udp,
    /// TCP: up to 65535 bytes.
    Tcp,
}

/// What happened, for counters and the query log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing sent.
    Dropped,
    /// A response of this many bytes is in the buffer, with this rcode.
    Answered {
        /// Length of the response.
        len: usize,
        /// Its rcode (extended rcodes included).
        rcode: u16,
        /// It was truncated.
        truncated: bool,
        /// The question's type (0 when the query had none that could be read).
        qtype: u16,
        /// The query carried an EDNS Client Subnet option.
        ecs: bool,
        /// For A/AAAA of a service name: how the service decided.
        service: Option<ServiceAnswer>,
        /// What the query's COOKIE option said ([`super::cookie::status`] bits; 0 without one).
        cookie: u8,
    },
}
