//! The redirect cases every driver runs ([`RedirectWorld`]): three loopback origins, the
//! requests to send, what each must end with, and what each server may have seen. Every
//! request carries credentials (`Authorization`, `Cookie`, and `x-secret`, which the client
//! names sensitive), so the checks can tell where they went.

use crate::server::{Reply, TestServer};

/// Credentials every case's request carries.
pub const CREDENTIALS: [(&str, &str); 3] = [
    ("authorization", "Bearer secret"),
    ("cookie", "session=1"),
    ("x-secret", "s3"),
];

/// The header a client must name with `sensitive_header` for these cases.
pub const SENSITIVE: &str = "x-secret";

/// The body a case sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseBody {
    /// None.
    None,
    /// These bytes, as a body that can be sent again.
    Bytes(&'static str),
    /// These bytes, as a stream read once.
    Stream(&'static str),
}

/// What a case must end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status (and, for a 2xx, the body `landed`).
    Status(u16),
    /// An error whose kind's `Debug` starts with this.
    Error(&'static str),
    /// The redirect is not followed: the 3xx, or an error, as the driver's HTTP library
    /// reads the response (a `Location` that is not ASCII).
    NotFollowed,
}

/// One redirect case.
#[derive(Clone, Debug)]
pub struct RedirectCase {
    /// Name for messages.
    pub name: &'static str,
    /// Method to send.
    pub method: http::Method,
    /// URL to call.
    pub url: String,
    /// Body to send.
    pub body: CaseBody,
    /// Send with redirects followed (`false`: a client with `max_redirects(0)`).
    pub follow: bool,
    /// What the call must end with.
    pub outcome: Outcome,
    /// What the servers must have seen.
    check: fn(&RedirectWorld),
}

/// Three origins: `a` and `a2` on 127.0.0.1 (two ports), `b` on 127.0.0.2, scripted with
/// every case's replies.
#[derive(Debug)]
pub struct RedirectWorld {
    /// The origin every case starts at.
    pub a: TestServer,
    /// The same host as `a` on another port: another origin.
    pub a2: TestServer,
    /// Another host.
    pub b: TestServer,
}

fn to(status: u16, location: &str) -> Vec<Reply> {
    vec![Reply::with_header(status, "location", location)]
}

fn landed() -> Vec<Reply> {
    vec![Reply::body(200, "landed")]
}

impl RedirectWorld {
    /// Starts the three servers and scripts them.
    pub fn start() -> RedirectWorld {
        let world = RedirectWorld {
            a: TestServer::start(),
            a2: TestServer::start(),
            b: TestServer::start_on("127.0.0.2"),
        };
        let (a, a2, b) = (&world.a, &world.a2, &world.b);
        a.script("/leave", to(302, &b.url("/leave")));
        b.script("/leave", landed());
        a.script("/port", to(302, &a2.url("/port")));
        a2.script("/port", landed());
        a.script("/chain", to(302, &b.url("/chain")));
        b.script("/chain", to(302, &a.url("/back")));
        a.script("/back", landed());
        a.script("/stay", to(301, "stay-next"));
        a.script("/stay-next", landed());
        a.script("/dir/sub/up", to(302, "../x"));
        a.script("/dir/x", landed());
        let scheme_relative = format!("//127.0.0.2:{}/sr", b.addr().port());
        a.script("/sr", to(302, &scheme_relative));
        b.script("/sr", landed());
        for (path, status) in [("/p301", 301), ("/p302", 302), ("/p303", 303)] {
            a.script(path, to(status, &format!("{path}-got")));
            a.script(&format!("{path}-got"), landed());
        }
        for (path, status) in [("/p307", 307), ("/p308", 308), ("/s307", 307)] {
            a.script(path, to(status, &format!("{path}-got")));
            a.script(&format!("{path}-got"), landed());
        }
        for scheme in [
            "file:///etc/passwd",
            "ftp://127.0.0.1/x",
            "data:,x",
            "javascript:x",
        ] {
            let path = format!("/scheme-{}", &scheme[..scheme.find(':').unwrap_or(0)]);
            a.script(&path, to(302, scheme));
        }
        for hop in 0..11 {
            a.script(&format!("/h{hop}"), to(302, &format!("/h{}", hop + 1)));
        }
        a.script("/h11", landed());
        a.script("/loop", to(302, &b.url("/loop")));
        b.script("/loop", to(302, &a.url("/loop")));
        a.script("/empty", to(302, ""));
        a.script("/none", vec![Reply::status(302)]);
        a.script("/unparsable", to(302, "http://[::1"));
        a.script(
            "/latin1",
            vec![Reply::Raw(
                b"HTTP/1.1 302 Found\r\nlocation: /caf\xe9\r\ncontent-length: 0\r\n\r\n",
            )],
        );
        a.script("/off", to(302, &b.url("/off")));
        world
    }

    /// Every case, with its URL on this world's servers.
    pub fn cases(&self) -> Vec<RedirectCase> {
        let get = |name, path: &str, outcome, check| RedirectCase {
            name,
            method: http::Method::GET,
            url: self.a.url(path),
            body: CaseBody::None,
            follow: true,
            outcome,
            check,
        };
        let post = |name, path: &str, body, outcome, check| RedirectCase {
            method: http::Method::POST,
            body,
            ..get(name, path, outcome, check)
        };
        let refused = |name, path: &str, kind| get(name, path, Outcome::Error(kind), |_| {});
        let mut cases = vec![
            get(
                "credentials stay home when a redirect leaves the origin",
                "/leave",
                Outcome::Status(200),
                |w| {
                    assert_credentials(&w.a, "/leave", true);
                    assert_credentials(&w.b, "/leave", false);
                },
            ),
            get(
                "another port is another origin",
                "/port",
                Outcome::Status(200),
                |w| assert_credentials(&w.a2, "/port", false),
            ),
            get(
                "credentials dropped at a hop stay dropped when the chain comes back",
                "/chain",
                Outcome::Status(200),
                |w| {
                    assert_credentials(&w.b, "/chain", false);
                    assert_credentials(&w.a, "/back", false);
                },
            ),
            get(
                "the same origin keeps credentials",
                "/stay",
                Outcome::Status(200),
                |w| assert_credentials(&w.a, "/stay-next", true),
            ),
            get(
                "a relative Location resolves against the request",
                "/dir/sub/up",
                Outcome::Status(200),
                |w| assert_eq!(w.a.hits("/dir/x"), 1),
            ),
            get(
                "a scheme-relative Location goes to its host, without credentials",
                "/sr",
                Outcome::Status(200),
                |w| assert_credentials(&w.b, "/sr", false),
            ),
            post(
                "303 after POST is a GET without the body",
                "/p303",
                CaseBody::Bytes("form=1"),
                Outcome::Status(200),
                |w| assert_became_get(&w.a, "/p303-got"),
            ),
            post(
                "301 after POST is a GET without the body",
                "/p301",
                CaseBody::Bytes("form=1"),
                Outcome::Status(200),
                |w| assert_became_get(&w.a, "/p301-got"),
            ),
            post(
                "302 after POST is a GET without the body",
                "/p302",
                CaseBody::Bytes("form=1"),
                Outcome::Status(200),
                |w| assert_became_get(&w.a, "/p302-got"),
            ),
            post(
                "307 keeps the method and the body",
                "/p307",
                CaseBody::Bytes("form=1"),
                Outcome::Status(200),
                |w| assert_kept_post(&w.a, "/p307-got"),
            ),
            post(
                "308 keeps the method and the body",
                "/p308",
                CaseBody::Bytes("form=1"),
                Outcome::Status(200),
                |w| assert_kept_post(&w.a, "/p308-got"),
            ),
            post(
                "307 with a streamed body returns the 3xx",
                "/s307",
                CaseBody::Stream("form=1"),
                Outcome::Status(307),
                |w| assert_eq!(w.a.hits("/s307-got"), 0),
            ),
            refused(
                "an 11-hop chain fails at the limit",
                "/h0",
                "Redirect(TooManyHops { max: 10 })",
            ),
            refused("a loop fails", "/loop", "Redirect(Loop)"),
            refused(
                "an unparsable Location fails",
                "/unparsable",
                "Redirect(InvalidLocation)",
            ),
            get(
                "an empty Location returns the 3xx",
                "/empty",
                Outcome::Status(302),
                |_| {},
            ),
            get(
                "no Location returns the 3xx",
                "/none",
                Outcome::Status(302),
                |_| {},
            ),
            get(
                "a Location that is not ASCII is not followed",
                "/latin1",
                Outcome::NotFollowed,
                |_| {},
            ),
            RedirectCase {
                follow: false,
                ..get(
                    "with redirects off the 3xx is the answer",
                    "/off",
                    Outcome::Status(302),
                    |w| assert_eq!(w.b.hits("/off"), 0),
                )
            },
        ];
        for scheme in ["file", "ftp", "data", "javascript"] {
            let path = format!("/scheme-{scheme}");
            cases.push(refused(
                "a redirect to another scheme fails",
                &path,
                "Redirect(UnsupportedScheme)",
            ));
        }
        cases
    }

    /// Checks what `case` ended with (`Ok(status)` with the body when it is a 2xx, or the
    /// error's kind) and what the servers saw; `driver` prefixes every message.
    pub fn check(
        &self,
        driver: &str,
        case: &RedirectCase,
        result: Result<(u16, String), resil_http::ErrorKind>,
    ) {
        let name = case.name;
        match (case.outcome, &result) {
            (Outcome::Status(want), Ok((status, body))) => {
                assert_eq!(*status, want, "{driver}: {name}");
                if (200..300).contains(status) {
                    assert_eq!(body, "landed", "{driver}: {name}");
                }
            }
            (Outcome::Error(kind), Err(got)) => assert!(
                format!("{got:?}").starts_with(kind),
                "{driver}: {name}: expected {kind}, got {got:?}"
            ),
            (Outcome::NotFollowed, Ok((status, _))) => {
                assert_eq!(*status, 302, "{driver}: {name}");
            }
            (Outcome::NotFollowed, Err(_)) => {}
            (want, got) => panic!("{driver}: {name}: expected {want:?}, got {got:?}"),
        }
        (case.check)(self);
    }
}

/// The value of each of [`CREDENTIALS`] the request to `path` carried.
fn credentials_at(server: &TestServer, path: &str) -> Vec<Option<String>> {
    let requests = server.requests();
    let request = requests
        .iter()
        .rfind(|r| r.path == path)
        .unwrap_or_else(|| panic!("no request to {path}"));
    CREDENTIALS
        .iter()
        .map(|(name, _)| request.header(name).map(str::to_owned))
        .collect()
}

fn assert_credentials(server: &TestServer, path: &str, present: bool) {
    let seen = credentials_at(server, path);
    let want: Vec<_> = CREDENTIALS
        .iter()
        .map(|(_, value)| present.then(|| (*value).to_owned()))
        .collect();
    assert_eq!(seen, want, "credentials at {path}");
}

fn assert_became_get(server: &TestServer, path: &str) {
    let requests = server.requests();
    let hop = requests
        .iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("{path}"));
    assert_eq!(hop.method, "GET", "{path}");
    assert!(hop.body.is_empty(), "{path}: the body went along");
    assert_eq!(hop.header("content-type"), None, "{path}");
    assert!(
        hop.header("content-length").is_none_or(|n| n == "0"),
        "{path}: {:?}",
        hop.header("content-length")
    );
}

fn assert_kept_post(server: &TestServer, path: &str) {
    let requests = server.requests();
    let hop = requests
        .iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("{path}"));
    assert_eq!(hop.method, "POST", "{path}");
    assert_eq!(hop.body, b"form=1", "{path}");
}
