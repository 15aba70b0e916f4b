//! The helpers every driver reuses, checked on their own: URLs, headers, an attempt's
//! request and response.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method as HttpMethod, StatusCode, Uri};
use resil_core::{Method, RetryAfter, UnixTime};

use crate::ErrorKind;
use crate::attempt::{ResponseHeaders, attempt_request, request_info, response_head};
use crate::headers::{
    check_request_headers, fill_host_header, is_sensitive_header, merge_default_headers,
    redacted_headers,
};
use crate::proxy::check_proxy_url;
use crate::url::{join_url, redact_url, take_url_credentials};

#[test]
fn request_info_reads_method_and_idempotency_key() {
    let mut headers = HeaderMap::new();
    let info = request_info(&HttpMethod::POST, &headers, true);
    assert_eq!(info.method, Method::Post);
    assert!(!info.has_idempotency_key);
    headers.insert("Idempotency-Key", HeaderValue::from_static("abc"));
    assert!(request_info(&HttpMethod::POST, &headers, false).has_idempotency_key);
    let custom = HttpMethod::from_bytes(b"PURGE").unwrap();
    assert_eq!(request_info(&custom, &headers, true).method, Method::Other);
}

#[test]
fn response_head_parses_retry_after_lines() {
    let mut headers = HeaderMap::new();
    headers.append("retry-after", HeaderValue::from_static("7"));
    let seen = ResponseHeaders(&headers);
    let head = response_head(StatusCode::SERVICE_UNAVAILABLE, &seen, Some(UnixTime(0)));
    assert_eq!(head.status, 503);
    assert_eq!(
        head.retry_after,
        Some(RetryAfter::Delay(Duration::from_secs(7)))
    );
    headers.append("retry-after", HeaderValue::from_static("9"));
    let seen = ResponseHeaders(&headers);
    let head = response_head(StatusCode::SERVICE_UNAVAILABLE, &seen, None);
    assert_eq!(head.retry_after, None, "two disagreeing lines are ignored");
    let empty = HeaderMap::new();
    let seen = ResponseHeaders(&empty);
    let head = response_head(StatusCode::OK, &seen, None);
    assert_eq!(head.retry_after, None);
    assert!(head.headers.is_some());
}

#[test]
fn join_url_appends_paths_and_rejects_bad_urls() {
    let base: Uri = "http://127.0.0.1:8080/api".parse().unwrap();
    for (target, want) in [
        ("users", "http://127.0.0.1:8080/api/users"),
        ("/users", "http://127.0.0.1:8080/api/users"),
        ("users?x=1&y=2", "http://127.0.0.1:8080/api/users?x=1&y=2"),
        ("", "http://127.0.0.1:8080/api/"),
        ("https://127.0.0.2/other", "https://127.0.0.2/other"),
        // A URL in the query does not make the target absolute.
        (
            "/login?next=http://127.0.0.2/x",
            "http://127.0.0.1:8080/api/login?next=http://127.0.0.2/x",
        ),
        ("items:batchGet", "http://127.0.0.1:8080/api/items:batchGet"),
    ] {
        assert_eq!(
            join_url(Some(&base), target).unwrap().to_string(),
            want,
            "{target}"
        );
    }
    for fine in [
        "http://127.0.0.1:65535/",
        "http://[::1]:8080/",
        "http://[::1]/",
        "http://[::1]:/",
        "http://u:p@127.0.0.1:1/",
        "http://u:p@[::1]/",
        // RFC 3986 allows an empty port: the scheme's.
        "http://127.0.0.1:/x",
        "http://127.0.0.1:000080/",
        "http://127.0.0.1:65535/",
    ] {
        assert!(join_url(None, fine).is_ok(), "{fine}");
    }
    let root: Uri = "http://127.0.0.1".parse().unwrap();
    assert_eq!(
        join_url(Some(&root), "/x").unwrap().to_string(),
        "http://127.0.0.1/x"
    );
    for bad in [
        "ftp://127.0.0.1/x",
        "http://",
        "users with spaces",
        "http://a b/",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:0/",
        "http://u:p@[::1]:65536/",
        "http://u:p@127.0.0.1:0/",
        "http://[::1]:0/",
        "http://127.0.0.1:0065536/",
        "http://127.0.0.1:100000/",
        "http://127.0.0.1:4294967377/",
    ] {
        let err = join_url(Some(&base), bad).unwrap_err();
        assert!(err.to_string().starts_with("invalid URL"), "{bad}: {err}");
    }
    assert!(
        join_url(None, "/x")
            .unwrap_err()
            .to_string()
            .contains("no base URL")
    );
    let err = join_url(None, "http://user:hunter2@[::1/").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn a_request_is_framed_by_its_body_and_names_one_ascii_host() {
    let check = |lines: &[&str], body_len: Option<u64>| {
        let mut request = http::Request::put("http://user:hunter2@127.0.0.1/x");
        for line in lines {
            request = request.header("content-length", *line);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        check_request_headers::<()>(&parts, body_len).map_err(|e| {
            assert_eq!(e.kind(), ErrorKind::InvalidConfig);
            let shown = format!("{e:#}");
            assert!(
                shown.starts_with("PUT http://[redacted]@127.0.0.1/x: invalid configuration: "),
                "{shown}"
            );
            shown
        })
    };
    // Nothing to check without the header, and a stream may declare its length.
    check(&[], Some(5)).unwrap();
    check(&[], None).unwrap();
    check(&["5"], None).unwrap();
    check(&["5"], Some(5)).unwrap();
    check(&["0"], Some(0)).unwrap();
    check(&["5", "5"], Some(5)).unwrap();
    check(&["18446744073709551615"], None).unwrap();
    let mismatch = check(&["1"], Some(2)).unwrap_err();
    assert!(
        mismatch.contains("Content-Length 1 does not match the body (2 bytes)"),
        "{mismatch}"
    );
    assert!(check(&["3"], Some(0)).is_err(), "an empty body is 0 bytes");
    let twice = check(&["1", "2"], None).unwrap_err();
    assert!(twice.contains("given twice, as 1 and 2"), "{twice}");
    let refused = |headers: &[(&str, &[u8])]| {
        let mut request = http::Request::get("http://127.0.0.1/");
        for (name, value) in headers {
            request = request.header(*name, http::HeaderValue::from_bytes(value).unwrap());
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        let err = check_request_headers::<()>(&parts, Some(0)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        format!("{err:#}")
    };
    let twice = refused(&[("host", b"a.test"), ("host", b"b.test")]);
    assert!(twice.ends_with("Host is given more than once"), "{twice}");
    let latin1 = refused(&[("host", b"caf\xe9.test")]);
    assert!(
        latin1.ends_with("is not a host name (not visible ASCII)"),
        "{latin1}"
    );
    let both = refused(&[("transfer-encoding", b"chunked"), ("content-length", b"0")]);
    assert!(
        both.ends_with("Content-Length and Transfer-Encoding are both given"),
        "{both}"
    );
    // Either framing header alone is the transport's to honour or replace.
    let (parts, ()) = http::Request::post("http://127.0.0.1/")
        .header("transfer-encoding", "chunked")
        .header("host", "a.test")
        .body(())
        .unwrap()
        .into_parts();
    check_request_headers::<()>(&parts, None).unwrap();
    for junk in [
        "",
        "x",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1, 1",
        "0x10",
        "18446744073709551616",
    ] {
        let err = check(&[junk], None).unwrap_err();
        assert!(err.contains("is not a number of bytes"), "{junk:?}: {err}");
    }
}

#[test]
fn credentials_in_a_url_become_basic_authorization_and_leave_the_url() {
    let taken = |url: &str, own: Option<&str>| {
        let mut request = http::Request::get(url);
        if let Some(value) = own {
            request = request.header("authorization", value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        take_url_credentials(&mut parts);
        let header = parts.headers.get_all("authorization").iter();
        let header: Vec<_> = header
            .map(|v| (v.to_str().unwrap().to_owned(), v.is_sensitive()))
            .collect();
        (parts.uri.to_string(), header)
    };
    let basic = |b64: &str| vec![(format!("Basic {b64}"), true)];
    assert_eq!(
        taken("http://me:pw@127.0.0.1:8080/x?q=1", None),
        ("http://127.0.0.1:8080/x?q=1".to_owned(), basic("bWU6cHc="))
    );
    // No password is an empty one (`me:`), as curl sends it.
    assert_eq!(
        taken("http://me@[::1]/", None),
        ("http://[::1]/".to_owned(), basic("bWU6"))
    );
    // Escapes are decoded; a colon in the password is the password's.
    assert_eq!(
        taken("https://a%20b:c:d%40@h.test/", None),
        ("https://h.test/".to_owned(), basic("YSBiOmM6ZEA="))
    );
    // The request's own header wins; the URL loses its credentials anyway.
    assert_eq!(
        taken("http://me:pw@h.test/", Some("Bearer t")),
        (
            "http://h.test/".to_owned(),
            vec![("Bearer t".to_owned(), false)]
        )
    );
    assert_eq!(
        taken("http://h.test/a@b", None),
        ("http://h.test/a@b".to_owned(), vec![])
    );
}

#[test]
fn default_headers_never_override_the_request() {
    let mut defaults = HeaderMap::new();
    defaults.insert("user-agent", HeaderValue::from_static("resil"));
    defaults.append("accept", HeaderValue::from_static("a"));
    defaults.append("accept", HeaderValue::from_static("b"));
    defaults.insert("x-team", HeaderValue::from_static("core"));
    let mut request = HeaderMap::new();
    request.insert("user-agent", HeaderValue::from_static("mine"));
    merge_default_headers(&mut request, &defaults);
    assert_eq!(request["user-agent"], "mine");
    assert_eq!(request.get_all("accept").iter().count(), 2);
    assert_eq!(request["x-team"], "core");
}

#[test]
fn secrets_are_redacted() {
    assert!(is_sensitive_header(&http::header::AUTHORIZATION));
    assert!(is_sensitive_header(&http::header::COOKIE));
    assert!(!is_sensitive_header(&http::header::ACCEPT));
    let mut h = HeaderMap::new();
    h.insert(
        "proxy-authorization",
        HeaderValue::from_static("Basic c2VjcmV0"),
    );
    h.insert("x-api-key", HeaderValue::from_static("k-123"));
    h.insert("x-binary", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
    let shown = redacted_headers(&h).to_string();
    assert!(
        !shown.contains("c2VjcmV0") && !shown.contains("k-123"),
        "{shown}"
    );
    assert!(shown.contains("x-binary: [2 bytes]"), "{shown}");

    let uri: Uri = "http://alice:hunter2@127.0.0.1:9/p?q=1".parse().unwrap();
    assert_eq!(redact_url(&uri), "http://[redacted]@127.0.0.1:9/p?q=1");
    let plain: Uri = "http://127.0.0.1/a@b".parse().unwrap();
    assert_eq!(redact_url(&plain), "http://127.0.0.1/a@b");

    let presigned: Uri = "https://b.example/o?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ab12&v=1"
        .parse()
        .unwrap();
    assert_eq!(
        redact_url(&presigned),
        "https://b.example/o?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&v=1"
    );
    let tokens: Uri = "http://127.0.0.1/?token=t1&tokens=2&key&Access_Token=t2"
        .parse()
        .unwrap();
    assert_eq!(
        redact_url(&tokens),
        "http://127.0.0.1/?token=[redacted]&tokens=2&key&Access_Token=[redacted]",
        "exact names, any case; a name without a value has nothing to hide"
    );
    assert_eq!(
        crate::url::redact_url_str("not a url?password=p#x"),
        "not a url?password=[redacted]#x"
    );
}

#[test]
fn an_attempt_copies_the_request_head_and_adds_the_call_id_but_no_extensions() {
    let (mut parts, ()) = http::Request::builder()
        .method(HttpMethod::PUT)
        .uri("http://127.0.0.1:8080/x?y=1")
        .version(http::Version::HTTP_2)
        .header("accept", "a")
        .header("accept", "b")
        .body(())
        .unwrap()
        .into_parts();
    parts.extensions.insert(7u8);
    let id = crate::AttemptId::new(http::HeaderName::from_static("x-request-id"), 1).unwrap();
    let sent = attempt_request(&parts, Some(&id), "body");
    assert_eq!(sent.method(), HttpMethod::PUT);
    assert_eq!(sent.uri(), &parts.uri);
    assert_eq!(sent.version(), http::Version::HTTP_2);
    assert_eq!(sent.headers().get_all("accept").iter().count(), 2);
    assert_eq!(sent.headers().get("x-request-id"), Some(id.value()));
    assert!(sent.extensions().get::<u8>().is_none());
    assert_eq!(*sent.body(), "body");
    // The call's own head is left as it was.
    assert!(parts.headers.get("x-request-id").is_none());
    assert_eq!(parts.extensions.get::<u8>(), Some(&7));
}

proptest::proptest! {
    /// The hand-rolled port check agrees with `http`'s own reading of the authority.
    #[test]
    fn a_url_is_refused_exactly_when_its_port_is_outside_1_to_65535(
        user in proptest::option::of("[a-z]{1,3}(:[0-9]{0,6})?"),
        host in proptest::sample::select(vec!["127.0.0.1", "h", "h9", "[::1]", "[fe80::1:2]"]),
        port in proptest::option::of("[0-9]{0,7}"),
    ) {
        let user = user.map(|u| format!("{u}@")).unwrap_or_default();
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let url = format!("http://{user}{host}{port}/x");
        let uri: Uri = url.parse().unwrap();
        let authority = uri.authority().unwrap();
        // `Authority::port` is `None` past 65535, so read the port after `http`'s host.
        let text = authority.as_str();
        let after_user = text.rsplit_once('@').map_or(text, |(_, rest)| rest);
        let port = after_user
            .strip_prefix(authority.host())
            .and_then(|rest| rest.strip_prefix(':'))
            .filter(|p| !p.is_empty());
        let out_of_range = port.is_some_and(|p| !matches!(p.parse::<u16>(), Ok(1..)));
        proptest::prop_assert_eq!(join_url(None, &url).is_err(), out_of_range, "{}", url);
    }
}

#[test]
fn host_headers_follow_the_authority_from_one_request_to_the_next() {
    // The value is kept per thread between calls; each request must still get its own.
    for url in [
        "http://127.0.0.1:8080/a",
        "http://127.0.0.1:8080/b",
        "http://127.0.0.2:8080/",
        "http://u:p@127.0.0.2:8080/",
        "http://127.0.0.2:8080/",
        "https://[::1]/",
        "http://127.0.0.1:8080/",
    ] {
        let uri: Uri = url.parse().unwrap();
        let mut headers = HeaderMap::new();
        fill_host_header(&mut headers, &uri);
        let authority = uri.authority().unwrap().as_str();
        let want = (!authority.contains('@')).then_some(authority);
        assert_eq!(
            headers.get("host").map(|v| v.to_str().unwrap()),
            want,
            "{url}"
        );
    }
}

#[test]
fn a_proxy_url_is_http_or_socks5_with_a_host_and_nothing_after_it() {
    for good in [
        "http://127.0.0.1:3128",
        "http://proxy.test:80",
        "http://me:p%40ss@proxy.test:8080/",
        "http://[::1]:3128",
        "socks5://127.0.0.1:1080",
        "socks5h://me:p%40ss@proxy.test:1080/",
        "socks5h://[::1]:1080",
    ] {
        let uri = check_proxy_url(good).unwrap();
        assert_eq!(
            uri.to_string().trim_end_matches('/'),
            good.trim_end_matches('/')
        );
    }
    for (bad, problem) in [
        ("https://proxy.test:443", "starts with http://, socks5://"),
        ("http://proxy.test", "names its port"),
        ("http://:3128", "has no host"),
        ("http://me:secret@[::1]/", "names its port"),
        ("socks5h://proxy.test", "names its port"),
        ("socks5://proxy.test:0", "port must be"),
        ("socks5://:1080", "has no host"),
        ("socks5://proxy.test:1080/x", "nothing after host:port"),
        ("socks4://proxy.test:1080", "starts with http://, socks5://"),
        ("socks://proxy.test:1080", "starts with http://, socks5://"),
        ("proxy.test:3128", "starts with http://"),
        ("http://proxy.test:3128/path", "nothing after host:port"),
        ("http://proxy.test:3128/?q=1", "nothing after host:port"),
        ("http://proxy.test:0", "port must be"),
        ("http://proxy.test:65536", "port must be"),
        ("http://", "not a URL"),
        ("", "not a URL"),
        ("http://pro xy", "not a URL"),
    ] {
        let err = check_proxy_url(bad).unwrap_err().to_string();
        assert!(err.contains(problem), "{bad:?}: {err}");
    }
    // Credentials never show in the error.
    let err = check_proxy_url("https://me:secret@proxy.test").unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[test]
fn only_a_provable_same_origin_keeps_credentials() {
    use crate::redirect::resolve;
    use resil_core::RedirectTarget;
    let base: Uri = "http://a.example:8080/dir/page".parse().unwrap();
    let target = |location: &str| {
        let value = HeaderValue::from_str(location).unwrap();
        resolve(&base, Some(&value), &[])
    };
    let same = |location: &str| match target(location).0 {
        RedirectTarget::Http { same_origin, .. } => same_origin,
        other => panic!("{location}: {other:?}"),
    };
    // What the url crate normalises is provably the same.
    assert!(same("http://A.EXAMPLE:8080/x"), "host case");
    assert!(same("/x"));
    assert!(same("../x"));
    assert!(same("?q=1"));
    // Anything else is another origin.
    assert!(!same("http://a.example./x"), "a trailing dot");
    assert!(!same("http://a.example/x"), "another port");
    assert!(!same("https://a.example:8080/x"), "another scheme");
    assert!(!same("http://a@a.example:8080/x"), "user info");
    assert!(
        !same("http://a.example:8080@b.example/x"),
        "the host is after the @"
    );
    assert!(!same("//b.example/x"), "scheme-relative to another host");
    // The target carries neither user info nor a fragment.
    let (_, uri) = target("http://user:pw@b.example/x#frag");
    assert_eq!(uri.unwrap(), "http://b.example/x");
    // An explicit default port is the same origin as none.
    let plain: Uri = "http://a.example/x".parse().unwrap();
    let value = HeaderValue::from_static("http://a.example:80/y");
    let (found, _) = resolve(&plain, Some(&value), &[]);
    assert!(
        matches!(
            found,
            RedirectTarget::Http {
                same_origin: true,
                ..
            }
        ),
        "{found:?}"
    );
}

#[test]
fn locations_no_call_can_go_to_are_told_apart() {
    use crate::redirect::resolve;
    use resil_core::RedirectTarget;
    let base: Uri = "http://a.example/dir/page".parse().unwrap();
    let kind = |location: &[u8]| {
        let value = HeaderValue::from_bytes(location).unwrap();
        resolve(&base, Some(&value), &[]).0
    };
    assert_eq!(kind(b""), RedirectTarget::Missing);
    assert_eq!(kind(b"   "), RedirectTarget::Missing);
    assert_eq!(resolve(&base, None, &[]).0, RedirectTarget::Missing);
    for other in [
        &b"file:///etc/passwd"[..],
        b"ftp://a.example/",
        b"data:,x",
        b"javascript:x",
    ] {
        assert_eq!(kind(other), RedirectTarget::UnsupportedScheme, "{other:?}");
    }
    for invalid in [
        &b"http://[::1"[..],
        b"http://a%2Fb.example/",
        b"/caf\xe9",
        b"http://",
    ] {
        assert_eq!(kind(invalid), RedirectTarget::Invalid, "{invalid:?}");
    }
    let visited = ["http://b.example/".to_owned()];
    let value = HeaderValue::from_static("http://b.example/");
    assert!(matches!(
        resolve(&base, Some(&value), &visited).0,
        RedirectTarget::Http { seen: true, .. }
    ));
    let value = HeaderValue::from_static("/dir/page");
    assert!(
        matches!(
            resolve(&base, Some(&value), &[]).0,
            RedirectTarget::Http { seen: true, .. }
        ),
        "a redirect to itself is a loop"
    );
}

#[test]
fn a_response_head_frames_its_body_one_way_or_is_refused() {
    use crate::headers::response_framing_problem;
    let headers = |pairs: &[(&'static str, &'static str)]| -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    http::HeaderName::from_static(n),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    };
    for ok in [
        &[][..],
        &[("content-length", "12")],
        &[("content-length", "12, 12")],
        &[("content-length", "12"), ("content-length", "12")],
        &[("transfer-encoding", "chunked")],
    ] {
        assert_eq!(response_framing_problem(&headers(ok)), None, "{ok:?}");
    }
    for bad in [
        &[("content-length", "99999999999999999999999")][..],
        &[("content-length", "-1")],
        &[("content-length", "+5")],
        &[("content-length", "")],
        &[("content-length", "12, 13")],
        &[("content-length", "12,")],
        &[("content-length", "12"), ("content-length", "13")],
        // RFC 9112 6.3: a sign of smuggling.
        &[("transfer-encoding", "chunked"), ("content-length", "5")],
    ] {
        assert!(response_framing_problem(&headers(bad)).is_some(), "{bad:?}");
    }
}
