//! Shared test support for every resil driver: a loopback HTTP/1.1 server that misbehaves on
//! purpose, and the scenario table every driver runs so their transcripts can be compared.
//!
//! The server binds 127.0.0.x only, answers each path from a script (the n-th request on a
//! path gets the n-th reply; the last reply repeats), and records every request and connection.
//! Raw TCP, because the faults that matter — resets after the request was read, stalls,
//! truncated bodies, slow drips, huge heads — cannot be produced by a well-behaved server.
//!
//! Everything is re-exported here, flat; the modules hold it by subject:
//! - `server`: the misbehaving HTTP/1.1 server, its replies, the load lock, and addresses that
//!   refuse or hang;
//! - `scenarios`: the scenario table and the hooks transcript it is checked against;
//! - `body_faults`: faults after the response head, and the cases every driver runs;
//! - `check`: the checks every driver runs, and the inputs each is defined for;
//! - `h2c`: an HTTP/2 server without TLS;
//! - `proxy`: an HTTP and a SOCKS5 proxy, and the proxy checks;
//! - `redirects`: three origins and the redirect cases every driver runs;
//! - `child`: running a test again in a child process with an environment of its own;
//! - `redis`: a real `redis-server` on a free loopback port, stopped by its pid.
//! - `otel`: one test's OpenTelemetry pipeline (in-memory exporters), the telemetry check of
//!   the scenario table, canary secrets, and a loopback OTLP/HTTP receiver.

mod body_faults;
mod check;
mod child;
mod framing;
mod h2c;
mod hedging;
mod otel;
mod proxy;
mod redirects;
mod redis;
mod scenarios;
mod server;

pub use body_faults::{
    BODY_LEN, BodyFaultCase, BodyFaultWorld, BodyOutcome, CUT_AT, ReadAs, STALL_TIMEOUT, full_body,
    gzipped_body,
};
pub use check::{
    BODILESS_REQUESTS, HELPER_METHODS, REQUEST_VERSIONS, assert_breaker_scope,
    assert_causes_told_once, assert_connect_hang_retried, assert_decode_error,
    assert_empty_bodies_declared, assert_head_refused, assert_only_well_framed_requests_sent,
    assert_refused_setting, assert_took, assert_url_credentials_sent_as_basic,
    assert_version_outcome, check_breaker_scope_through, check_empty_bodies_through,
    check_framing_through, check_response_head_limit_through, check_url_credentials_through,
    check_versions_through, connect_hang_policy, down_and_up, error_body_policy,
    error_body_replies, methods_seen, never_timing_out, ok_twice, trips_after_two,
    url_with_credentials,
};
pub use child::{PROXY_VARIABLES, finish_child, is_child, run_child, spawn_child};
pub use framing::{BAD_CHUNK_SIZES, FramingWorld};
pub use h2c::{H2cServer, PAD_RESPONSE};
pub use hedging::{HEDGE_AFTER, HedgeCase, HedgeWorld, SLOW, hedge_policy, open_sketch};
pub use otel::{
    CANARY_HEADER, CANARY_HEADER_NAME, CANARY_PASSWORD, CANARY_QUERY, MetricPoint, OtlpPost,
    OtlpReceiver, SpanRecord, Telemetry, TelemetryRecord, canary_url,
};
pub use proxy::{
    FakeProxy, FakeSocks5, LOOPBACK_NO_PROXY, PROXY_CREDENTIALS, PROXY_RULE_ATTEMPTS,
    ProxyAuthAnswer, ProxyRequest, REFUSED_PROXY, SOCKS_CREDENTIALS, SocksRequest, SocksTarget,
    assert_proxy_refused, assert_went_through, check_env_proxy, check_env_socks_proxy,
    check_explicit_proxy, check_proxy_rule, check_socks_proxy, check_socks_rule, proxy_and_server,
    proxy_rule_policy,
};
pub use redirects::{CREDENTIALS, CaseBody, Outcome, RedirectCase, RedirectWorld, SENSITIVE};
pub use redis::{RedisServer, redis_available};
pub use scenarios::{Expect, Scenario, Transcript, scenario_policy, scenarios};
pub use server::{
    LOAD, Recorded, Reply, TestServer, UnansweredListener, dripping_body, exclusive_load,
    latin1_body, refused_addr, shared_load, stalled_503_then_ok, truncated_body,
};
