//! One send against a real HTTP receiver: what arrives, and how each kind of answer is classified.

use std::time::Duration;

use berth_hooks::{Outcome, Outgoing, Sender, SigningSecret, standard_headers};
use berth_testkit::receiver::{Receiver, Reply, verify_standard_signature};

fn outgoing(receiver: &Receiver, headers: Vec<(String, String)>, body: &[u8]) -> Outgoing {
    Outgoing {
        url: receiver.url("/hooks/berth?source=test").parse().unwrap(),
        headers,
        body: body.to_vec(),
    }
}

#[tokio::test]
async fn a_signed_message_arrives_whole_and_verifies() {
    let receiver = Receiver::start(vec![Reply::from(204)]);
    let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let body = br#"{"type":"promotion","image":"app"}"#;
    let mut headers: Vec<(String, String)> =
        standard_headers(&secret, "msg_1", 1_764_000_000, body)
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect();
    headers.push(("content-type".into(), "application/json".into()));
    let sender = Sender::new(Duration::from_secs(5)).unwrap();

    let outcome = sender.send(&outgoing(&receiver, headers, body)).await;

    assert_eq!(outcome, Outcome::Delivered { status: 204 });
    let received = receiver.requests();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].path, "/hooks/berth");
    assert_eq!(received[0].query, "source=test");
    assert_eq!(received[0].body, body);
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    assert_eq!(received[0].header("webhook-id"), Some("msg_1"));
    verify_standard_signature(secret.expose(), &received[0]).unwrap();

    // The same check refuses a body that was changed on the way.
    let mut tampered = received[0].clone();
    tampered.body = br#"{"type":"rollback","image":"app"}"#.to_vec();
    assert!(verify_standard_signature(secret.expose(), &tampered).is_err());
}

#[tokio::test]
async fn answers_are_classified_retry_or_rejected() {
    let receiver = Receiver::start(vec![
        Reply::from(503).with_header("retry-after", "7"),
        Reply::from(429),
        Reply::from(401).with_body("bad credentials\u{1b}[2J"),
        Reply::from(302).with_header("location", "http://127.0.0.1:1/elsewhere"),
    ]);
    let sender = Sender::new(Duration::from_secs(5)).unwrap();
    let message = outgoing(&receiver, vec![], b"{}");

    assert_eq!(
        sender.send(&message).await,
        Outcome::Retry {
            reason: "answered 503".into(),
            after: Some(Duration::from_secs(7)),
        }
    );
    assert_eq!(
        sender.send(&message).await,
        Outcome::Retry {
            reason: "answered 429".into(),
            after: None,
        }
    );
    // A refusal quotes the receiver's words, escaped.
    assert_eq!(
        sender.send(&message).await,
        Outcome::Rejected {
            status: 401,
            excerpt: "bad credentials\\u{1b}[2J".into(),
        }
    );
    // A redirect is an answer: not followed, so headers never travel to another host.
    assert!(matches!(
        sender.send(&message).await,
        Outcome::Rejected { status: 302, .. }
    ));
    assert_eq!(receiver.requests().len(), 4);
}

#[tokio::test]
async fn a_receiver_that_is_not_there_is_worth_retrying() {
    let port = berth_testkit::free_port();
    let sender = Sender::new(Duration::from_secs(2)).unwrap();
    let message = Outgoing {
        url: format!("http://127.0.0.1:{port}/").parse().unwrap(),
        headers: vec![("authorization".into(), "Bearer s3cret".into())],
        body: vec![],
    };
    let outcome = sender.send(&message).await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    // The outgoing message's Debug names headers, never their values.
    assert!(!format!("{message:?}").contains("s3cret"));
}
