//! The registry client against a hostile server: behaviour a real registry will not show (wrong
//! digests, oversized bodies, dangerous token realms, credentials across redirects, endless
//! 429s). This small in-process server is the one place a fake registry is right.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use berth_core::{Digest, ImageRef};
use berth_oci::digest::ContentHasher;
use berth_oci::{
    Client, ClientConfig, Credentials, Descriptor, OciError, RegistryConfig, RetryPolicy, Secret,
};

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    /// Path and query.
    uri: String,
    authorization: Option<String>,
    accept: Option<String>,
}

type Handler = dyn Fn(&Seen, &SocketAddr) -> Response<Body> + Send + Sync;

struct Hostile {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Hostile {
    async fn start(
        handler: impl Fn(&Seen, &SocketAddr) -> Response<Body> + Send + Sync + 'static,
    ) -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let app_log = log.clone();
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let log = app_log.clone();
            let handler = handler.clone();
            async move {
                let seen = Seen {
                    method: request.method().clone(),
                    uri: request.uri().to_string(),
                    authorization: header(request.headers(), "authorization"),
                    accept: header(request.headers(), "accept"),
                };
                log.lock().unwrap().push(seen.clone());
                handler(&seen, &addr)
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Hostile { addr, log }
    }

    fn registry(&self) -> String {
        self.addr.to_string()
    }

    fn image(&self, rest: &str) -> ImageRef {
        ImageRef::parse(&format!("{}/{rest}", self.addr)).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.to_str().unwrap().to_string())
}

fn client_for(registries: &[&str], credentials: Option<Credentials>) -> Client {
    let config = RegistryConfig {
        plain_http: true,
        credentials,
        ..RegistryConfig::default()
    };
    Client::new(ClientConfig {
        registries: registries
            .iter()
            .map(|r| (r.to_string(), config.clone()))
            .collect(),
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(2),
        },
        ..ClientConfig::default()
    })
}

fn respond(status: u16) -> axum::http::response::Builder {
    Response::builder().status(StatusCode::from_u16(status).unwrap())
}

fn sha256(bytes: &[u8]) -> Digest {
    ContentHasher::digest_of(berth_core::DigestAlgorithm::Sha256, bytes)
}

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

#[tokio::test]
async fn by_digest_fetch_rejects_content_that_does_not_match() {
    let server = Hostile::start(|_, _| respond(200).body(Body::from(MANIFEST)).unwrap()).await;
    let client = client_for(&[&server.registry()], None);
    let wanted = sha256(b"something else");
    let image = server.image(&format!("repo@{wanted}"));
    let error = client.manifest(&image).await.unwrap_err();
    assert!(
        matches!(&error, OciError::Corrupt { expected, actual, .. }
            if *expected == wanted.to_string() && *actual == sha256(MANIFEST.as_bytes()).to_string()),
        "{error}"
    );
    assert!(error.to_string().contains("/repo@sha256:"), "{error}");
}

#[tokio::test]
async fn by_tag_fetch_is_checked_against_docker_content_digest() {
    let lie = sha256(b"not the manifest");
    let server = Hostile::start(move |_, _| {
        respond(200)
            .header("docker-content-digest", lie.to_string())
            .body(Body::from(MANIFEST))
            .unwrap()
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    let error = client.manifest(&server.image("repo:1")).await.unwrap_err();
    assert!(matches!(error, OciError::Corrupt { .. }), "{error}");
}

#[tokio::test]
async fn by_tag_fetch_without_header_gets_the_computed_digest() {
    let server = Hostile::start(|_, _| respond(200).body(Body::from(MANIFEST)).unwrap()).await;
    let client = client_for(&[&server.registry()], None);
    let manifest = client.manifest(&server.image("repo:1")).await.unwrap();
    assert_eq!(manifest.digest, sha256(MANIFEST.as_bytes()));
    assert_eq!(manifest.media_type, berth_oci::manifest::OCI_MANIFEST);
}

#[tokio::test]
async fn oversized_manifests_are_refused_with_or_without_content_length() {
    let big = vec![b' '; 5 << 20];
    let server = Hostile::start(move |seen, _| {
        if seen.uri.contains("chunked") {
            let chunks = big
                .chunks(64 << 10)
                .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>();
            respond(200)
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap()
        } else {
            respond(200).body(Body::from(big.clone())).unwrap()
        }
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    for repo in ["sized:1", "chunked:1"] {
        let error = client.manifest(&server.image(repo)).await.unwrap_err();
        assert!(
            matches!(error, OciError::TooLarge { what: "manifest", limit, .. } if limit == 4 << 20),
            "{repo}: {error}"
        );
    }
}

#[tokio::test]
async fn blob_size_and_digest_are_verified() {
    let content = b"layer bytes".to_vec();
    let served = content.clone();
    let server =
        Hostile::start(move |_, _| respond(200).body(Body::from(served.clone())).unwrap()).await;
    let client = client_for(&[&server.registry()], None);
    let image = server.image("repo:1");
    let descriptor = |digest: Digest, size: u64| Descriptor {
        media_type: "application/octet-stream".into(),
        digest,
        size,
        platform: None,
        annotations: Default::default(),
    };
    let good = descriptor(sha256(&content), content.len() as u64);
    let bytes = client
        .blob_bytes(&image, &good, 1024, "blob")
        .await
        .unwrap();
    assert_eq!(&bytes[..], &content[..]);

    let short = descriptor(sha256(&content), content.len() as u64 - 1);
    let error = client
        .blob_bytes(&image, &short, 1024, "blob")
        .await
        .unwrap_err();
    assert!(matches!(error, OciError::WrongSize { .. }), "{error}");

    let long = descriptor(sha256(&content), content.len() as u64 + 1);
    let error = client
        .blob_bytes(&image, &long, 1024, "blob")
        .await
        .unwrap_err();
    assert!(matches!(error, OciError::WrongSize { .. }), "{error}");

    let wrong = descriptor(sha256(b"other"), content.len() as u64);
    let error = client
        .blob_bytes(&image, &wrong, 1024, "blob")
        .await
        .unwrap_err();
    assert!(matches!(error, OciError::Corrupt { .. }), "{error}");

    let error = client
        .blob_bytes(&image, &good, 4, "config")
        .await
        .unwrap_err();
    assert!(
        matches!(error, OciError::TooLarge { what: "config", .. }),
        "{error}"
    );
}

#[tokio::test]
async fn token_realm_at_a_metadata_address_is_refused() {
    let server = Hostile::start(|_, _| {
        respond(401)
            .header(
                "www-authenticate",
                r#"Bearer realm="http://169.254.169.254/latest/meta-data/iam",service="x""#,
            )
            .body(Body::empty())
            .unwrap()
    })
    .await;
    let credentials = Credentials::Basic {
        username: "alice".into(),
        password: Secret::new("hunter2"),
    };
    let client = client_for(&[&server.registry()], Some(credentials));
    let error = client.manifest(&server.image("repo:1")).await.unwrap_err();
    assert!(matches!(error, OciError::TokenRealm { .. }), "{error}");
    assert!(!error.to_string().contains("hunter2"));
    assert_eq!(client.stats().token, 0, "no token request may be sent");
}

/// Host names of the test's choosing, as a DNS server under an attacker's control would answer.
struct FixedNames(Vec<(&'static str, std::net::IpAddr)>);

impl reqwest::dns::Resolve for FixedNames {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let found: Vec<SocketAddr> = self
            .0
            .iter()
            .filter(|(known, _)| *known == name.as_str())
            .map(|(_, address)| SocketAddr::new(*address, 0))
            .collect();
        Box::pin(async move {
            if found.is_empty() {
                return Err("no such name".into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Issue 15, item 9: a realm whose *name* looks harmless but resolves to a link-local
/// (metadata) address is refused before any credential is sent; the same realm resolving to
/// an ordinary address gets its token, so the names are resolved by the guard, not refused
/// for being unknown.
#[tokio::test]
async fn token_realm_resolving_to_a_metadata_address_is_refused() {
    let server = Hostile::start(|seen, own| {
        if seen.uri.starts_with("/token") {
            return respond(200)
                .body(Body::from(r#"{"token":"tok","expires_in":300}"#))
                .unwrap();
        }
        let realm = if seen.uri.contains("/evil/") {
            "169.254.169.254.nip.test"
        } else {
            "auth.test"
        };
        match seen.authorization.as_deref() {
            Some("Bearer tok") => respond(200)
                .header(
                    "docker-content-digest",
                    sha256(MANIFEST.as_bytes()).to_string(),
                )
                .body(Body::empty())
                .unwrap(),
            _ => respond(401)
                .header(
                    "www-authenticate",
                    format!(
                        r#"Bearer realm="http://{realm}:{}/token",service="x""#,
                        own.port()
                    ),
                )
                .body(Body::empty())
                .unwrap(),
        }
    })
    .await;
    let names = FixedNames(vec![
        (
            "169.254.169.254.nip.test",
            "169.254.169.254".parse().unwrap(),
        ),
        ("auth.test", "127.0.0.1".parse().unwrap()),
    ]);
    let config = RegistryConfig {
        plain_http: true,
        credentials: Some(Credentials::Basic {
            username: "alice".into(),
            password: Secret::new("hunter2"),
        }),
        ..RegistryConfig::default()
    };
    let client = Client::new(ClientConfig {
        registries: [(server.registry(), config)].into(),
        resolver: Some(berth_oci::Resolver(Arc::new(names))),
        ..ClientConfig::default()
    });
    let error = client
        .resolve(&server.image("evil/repo:1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            OciError::TokenRealm { reason, .. }
                if reason == "token realm resolves to a link-local or metadata address"
        ),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains("hunter2"));
    let token_requests = || {
        server
            .seen()
            .iter()
            .filter(|seen| seen.uri.starts_with("/token"))
            .count()
    };
    assert_eq!(token_requests(), 0);

    client.resolve(&server.image("good/repo:1")).await.unwrap();
    assert_eq!(token_requests(), 1, "the harmless name got its token");
}

#[tokio::test]
async fn token_realm_must_be_https_for_an_https_registry() {
    // The registry is https in the client's eyes; the check happens before any connection.
    let realm = url::Url::parse("http://auth.example/token").unwrap();
    assert!(berth_oci::auth::check_realm(&realm, false).is_err());
}

#[tokio::test]
async fn authorization_is_not_forwarded_to_another_host_on_redirect() {
    let storage = Hostile::start(|_, _| respond(200).body(Body::from("blob")).unwrap()).await;
    let storage_addr = storage.addr;
    let registry = Hostile::start(move |seen, own| {
        if seen.authorization.is_none() {
            return respond(401)
                .header("www-authenticate", r#"Basic realm="test""#)
                .body(Body::empty())
                .unwrap();
        }
        let target = if seen.uri.contains("same") {
            format!("http://{own}/storage/blob")
        } else {
            format!("http://{storage_addr}/storage/blob")
        };
        if seen.uri.starts_with("/storage") {
            return respond(200).body(Body::from("blob")).unwrap();
        }
        respond(307)
            .header("location", target)
            .body(Body::empty())
            .unwrap()
    })
    .await;
    let credentials = Credentials::Basic {
        username: "alice".into(),
        password: Secret::new("hunter2"),
    };
    let client = client_for(&[&registry.registry()], Some(credentials));
    let descriptor = Descriptor {
        media_type: "application/octet-stream".into(),
        digest: sha256(b"blob"),
        size: 4,
        platform: None,
        annotations: Default::default(),
    };
    let bytes = client
        .blob_bytes(&registry.image("other:1"), &descriptor, 64, "blob")
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"blob");
    let at_storage = storage.seen();
    assert_eq!(at_storage.len(), 1);
    assert_eq!(
        at_storage[0].authorization, None,
        "credentials leaked across a redirect"
    );

    // A redirect back to the registry's own origin keeps the credentials.
    client
        .blob_bytes(&registry.image("same:1"), &descriptor, 64, "blob")
        .await
        .unwrap();
    let last = registry.seen().pop().unwrap();
    assert_eq!(last.uri, "/storage/blob");
    assert!(last.authorization.is_some_and(|a| a.starts_with("Basic ")));
}

#[tokio::test]
async fn endless_429_gives_up_after_the_retry_budget() {
    let server = Hostile::start(|_, _| {
        respond(429)
            .header("retry-after", "0")
            .body(Body::empty())
            .unwrap()
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    let error = client.resolve(&server.image("repo:1")).await.unwrap_err();
    assert!(
        matches!(error, OciError::RateLimited { retry_after: Some(d), .. } if d == Duration::ZERO),
        "{error}"
    );
    assert_eq!(server.seen().len(), 4, "one try and three retries");
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_is_reported_not_waited_for() {
    let server = Hostile::start(|_, _| {
        respond(429)
            .header("retry-after", "3600")
            .body(Body::empty())
            .unwrap()
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    let error = client.resolve(&server.image("repo:1")).await.unwrap_err();
    assert!(
        matches!(error, OciError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3600)),
        "{error}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn transient_5xx_is_retried_with_retry_after_honoured() {
    let server = Hostile::start(|_, _| respond(200).body(Body::empty()).unwrap()).await;
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let flaky = Hostile::start(move |_, _| {
        let mut calls = counter.lock().unwrap();
        *calls += 1;
        if *calls < 3 {
            respond(503)
                .header("retry-after", "1")
                .body(Body::empty())
                .unwrap()
        } else {
            respond(200).body(Body::from(MANIFEST)).unwrap()
        }
    })
    .await;
    drop(server);
    let client = client_for(&[&flaky.registry()], None);
    let started = tokio::time::Instant::now();
    let manifest = client.manifest(&flaky.image("repo:1")).await.unwrap();
    assert_eq!(manifest.digest, sha256(MANIFEST.as_bytes()));
    assert_eq!(*calls.lock().unwrap(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 waited twice"
    );
}

#[tokio::test]
async fn bearer_tokens_are_fetched_once_per_scope_and_cached() {
    let server = Hostile::start(|seen, own| {
        if seen.uri.starts_with("/token") {
            let authorized = seen.authorization.as_deref() == Some("Basic YWxpY2U6aHVudGVyMg=="); // alice:hunter2
            if !authorized {
                return respond(401).body(Body::empty()).unwrap();
            }
            let scope = seen.uri.split("scope=").nth(1).unwrap_or("");
            return respond(200)
                .body(Body::from(format!(
                    r#"{{"token":"tok-{scope}","expires_in":300}}"#
                )))
                .unwrap();
        }
        match seen.authorization.as_deref() {
            Some(value) if value.starts_with("Bearer tok-") => respond(200)
                .header(
                    "docker-content-digest",
                    sha256(MANIFEST.as_bytes()).to_string(),
                )
                .body(Body::empty())
                .unwrap(),
            _ => respond(401)
                .header(
                    "www-authenticate",
                    format!(r#"Bearer realm="http://{own}/token",service="hostile""#),
                )
                .body(Body::empty())
                .unwrap(),
        }
    })
    .await;
    let credentials = Credentials::Basic {
        username: "alice".into(),
        password: Secret::new("hunter2"),
    };
    let client = client_for(&[&server.registry()], Some(credentials));
    for _ in 0..3 {
        client.resolve(&server.image("a:1")).await.unwrap();
    }
    client.resolve(&server.image("b:1")).await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.token, 2, "one token for repository a, one for b");
    // a: 401 then success, then two cached successes; b: token fetched up front, then success.
    assert_eq!(stats.head, 5);
    let tokens: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|s| s.uri.starts_with("/token"))
        .map(|s| s.uri)
        .collect();
    assert!(
        tokens[0].contains("scope=repository%3Aa%3Apull"),
        "{tokens:?}"
    );
    assert!(
        tokens[1].contains("scope=repository%3Ab%3Apull"),
        "{tokens:?}"
    );
}

#[tokio::test]
async fn token_requests_follow_no_redirects() {
    let server = Hostile::start(|seen, own| {
        if seen.uri.starts_with("/token") {
            return respond(302)
                .header("location", "http://169.254.169.254/steal")
                .body(Body::empty())
                .unwrap();
        }
        respond(401)
            .header(
                "www-authenticate",
                format!(r#"Bearer realm="http://{own}/token""#),
            )
            .body(Body::empty())
            .unwrap()
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    let error = client.resolve(&server.image("a:1")).await.unwrap_err();
    assert!(matches!(error, OciError::TokenRealm { .. }), "{error}");
}

#[tokio::test]
async fn tag_listing_follows_link_pagination_with_a_cap() {
    let tags: Vec<String> = (0..250).map(|i| format!("t{i:03}")).collect();
    let all = tags.clone();
    let server = Hostile::start(move |seen, _| {
        let query = seen.uri.split('?').nth(1).unwrap_or("");
        let n: usize = query
            .split('&')
            .find_map(|p| p.strip_prefix("n="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let last = query.split('&').find_map(|p| p.strip_prefix("last="));
        let start = last.map_or(0, |l| all.iter().position(|t| t == l).unwrap() + 1);
        let page: Vec<_> = all.iter().skip(start).take(n).cloned().collect();
        let mut response = respond(200);
        if start + n < all.len() {
            let next = format!(
                "</v2/repo/tags/list?n={n}&last={}>; rel=\"next\"",
                page.last().unwrap()
            );
            response = response.header("link", next);
        }
        response
            .body(Body::from(
                serde_json::json!({"name": "repo", "tags": page}).to_string(),
            ))
            .unwrap()
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    let image = server.image("repo:1");
    let listing = client.list_tags(&image, 10_000).await.unwrap();
    assert_eq!(listing.items, tags);
    assert!(!listing.truncated);
    assert_eq!(server.seen().len(), 3, "pages of at most 100");
    assert!(server.seen()[0].uri.contains("n=100"));

    let capped = client.list_tags(&image, 120).await.unwrap();
    assert_eq!(capped.items.len(), 120);
    assert!(capped.truncated);
}

#[tokio::test]
async fn pagination_may_not_leave_the_registry() {
    let server = Hostile::start(|_, _| {
        respond(200)
            .header(
                "link",
                "<http://evil.example/v2/_catalog?n=1>; rel=\"next\"",
            )
            .body(Body::from(r#"{"repositories":["a"]}"#))
            .unwrap()
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    let error = client
        .list_repositories(&server.registry(), 100)
        .await
        .unwrap_err();
    assert!(matches!(error, OciError::Protocol { .. }), "{error}");
}

#[tokio::test]
async fn resolve_falls_back_to_get_when_head_is_not_answered() {
    let server = Hostile::start(|seen, _| {
        if seen.method == Method::HEAD {
            respond(405).body(Body::empty()).unwrap()
        } else {
            respond(200)
                .header("content-type", berth_oci::manifest::OCI_MANIFEST)
                .body(Body::from(MANIFEST))
                .unwrap()
        }
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    let resolved = client.resolve(&server.image("repo:1")).await.unwrap();
    assert_eq!(resolved.digest, sha256(MANIFEST.as_bytes()));
    let stats = client.stats();
    assert_eq!((stats.head, stats.get), (1, 1));
}

#[tokio::test]
async fn schema1_is_refused_clearly() {
    let server = Hostile::start(|_, _| {
        respond(200)
            .header(
                "content-type",
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
            )
            .body(Body::from(
                r#"{"schemaVersion":1,"name":"repo","tag":"1","fsLayers":[]}"#,
            ))
            .unwrap()
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    let error = client.manifest(&server.image("repo:1")).await.unwrap_err();
    assert!(
        matches!(error, OciError::UnsupportedMediaType { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("schema 1"), "{error}");
}

#[tokio::test]
async fn typed_errors_for_statuses() {
    let server = Hostile::start(|seen, _| {
        let status = seen.uri.split('/').nth(2).unwrap().parse::<u16>().unwrap();
        respond(status)
            .body(Body::from(r#"{"errors":[{"code":"X","message":"why"}]}"#))
            .unwrap()
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    let fetch = |status: &str| {
        let image = server.image(&format!("{status}:1"));
        let client = client.clone();
        async move { client.manifest(&image).await.unwrap_err() }
    };
    assert!(matches!(fetch("404").await, OciError::NotFound { .. }));
    assert!(matches!(fetch("403").await, OciError::Denied { detail, .. } if detail == "X: why"));
    assert!(matches!(fetch("401").await, OciError::Unauthorized { .. }));
    let server_error = fetch("500").await;
    assert!(matches!(server_error, OciError::Server { status: 500, .. }));
    assert!(server_error.is_transient());
    assert_eq!(
        server
            .seen()
            .iter()
            .filter(|s| s.uri.contains("/500/"))
            .count(),
        4
    );
}

#[tokio::test]
async fn a_copy_refuses_a_source_blob_that_does_not_match_its_digest() {
    let honest = b"the real layer".to_vec();
    let served = b"the fake layer".to_vec();
    assert_eq!(
        honest.len(),
        served.len(),
        "the size matches: only the digest can tell"
    );
    let layer = sha256(&honest);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{}}}]}}"#,
        sha256(b"{}"),
        honest.len()
    );
    let manifest_digest = sha256(manifest.as_bytes());
    let body = manifest.clone();
    let layer_path = layer.to_string();
    let server = Hostile::start(move |seen, _| {
        let bytes = if seen.uri.contains("/manifests/") {
            body.clone().into_bytes()
        } else if seen.uri.ends_with(&layer_path) {
            served.clone()
        } else {
            b"{}".to_vec()
        };
        respond(200)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(Body::from(bytes))
            .unwrap()
    })
    .await;
    let plain = berth_testkit::Testbed::get().plain();
    let client = client_for(&[&server.registry(), plain], None);
    let source = server.image(&format!("repo@{manifest_digest}"));
    let fetched = client.manifest(&source).await.unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let target = ImageRef::parse(&format!(
        "{plain}/berth-oci/hostile-copy-{nanos}@{manifest_digest}"
    ))
    .unwrap();

    let error = berth_oci::copy_referenced(&client, &source, &target, &fetched)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, OciError::Corrupt { expected, .. } if *expected == layer.to_string()),
        "{error}"
    );
    // The config went over; the corrupt layer never landed in the target.
    assert!(client.has_blob(&target, &sha256(b"{}")).await.unwrap());
    assert!(!client.has_blob(&target, &layer).await.unwrap());
}

#[tokio::test]
async fn docker_hubs_rate_limit_headers_are_kept_per_registry() {
    // As registry-1.docker.io answers a manifest HEAD (docs.docker.com, "Docker Hub usage and
    // limits": `ratelimit-limit: 100;w=21600`, `ratelimit-remaining: 76;w=21600`).
    let server = Hostile::start(|_, _| {
        respond(200)
            .header("content-type", berth_oci::manifest::OCI_MANIFEST)
            .header(
                "docker-content-digest",
                sha256(MANIFEST.as_bytes()).as_str(),
            )
            .header("ratelimit-limit", "100;w=21600")
            .header("ratelimit-remaining", "76;w=21600")
            .body(Body::from(MANIFEST))
            .unwrap()
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    assert!(client.rate_limits().is_empty());
    client.resolve(&server.image("repo:1")).await.unwrap();
    assert_eq!(
        client.rate_limits(),
        [(
            server.registry(),
            berth_oci::RateLimit {
                limit: Some(100),
                remaining: 76,
                window_seconds: Some(21600),
            }
        )]
    );
}

/// The OCI 1.1 referrers API as the distribution spec publishes it: `GET
/// /v2/<name>/referrers/<digest>` with the index media type accepted; an image index answers
/// (its SHA-256 returned, since the answer changes as referrers are added); 404 is "no such
/// API"; an answer over the manifest cap is refused.
#[tokio::test]
async fn the_referrers_api_is_asked_as_the_spec_says() {
    let subject = sha256(b"subject");
    let answer = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":7,"artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json"}}]}}"#,
        sha256(b"referrer")
    );
    let body = answer.clone();
    let big = vec![b' '; 5 << 20];
    let server = Hostile::start(move |seen, _| {
        if seen.uri.starts_with("/v2/app/referrers/") {
            respond(200)
                .header("content-type", "application/vnd.oci.image.index.v1+json")
                .body(Body::from(body.clone()))
                .unwrap()
        } else if seen.uri.starts_with("/v2/big/referrers/") {
            respond(200).body(Body::from(big.clone())).unwrap()
        } else {
            respond(404).body(Body::from("404 page not found")).unwrap()
        }
    })
    .await;
    let client = client_for(&[&server.registry()], None);
    let (answered, index) = client
        .referrers(&server.image("app:1"), &subject)
        .await
        .unwrap()
        .expect("the registry has the API");
    assert_eq!(answered, sha256(answer.as_bytes()));
    assert_eq!(index.manifests.len(), 1);
    assert_eq!(index.manifests[0].digest, sha256(b"referrer"));
    let seen = server.seen();
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(seen[0].uri, format!("/v2/app/referrers/{subject}"));
    assert_eq!(
        seen[0].accept.as_deref(),
        Some("application/vnd.oci.image.index.v1+json")
    );
    assert!(
        client
            .referrers(&server.image("none:1"), &subject)
            .await
            .unwrap()
            .is_none()
    );
    let error = client
        .referrers(&server.image("big:1"), &subject)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            OciError::TooLarge {
                what: "referrers index",
                ..
            }
        ),
        "{error}"
    );
}
