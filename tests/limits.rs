//! Connection and request limits (`[limits]`): slow headers and stalled bodies are cut
//! off (slowloris), huge heads get 431, idle keep-alive connections close, a connection
//! serves a bounded number of requests, and connections past the cap wait. Normal
//! requests still work. Raw TCP clients, so each test sends exactly the bytes it means.

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

async fn gateway(redis: &RedisServer, limits: &str) -> TestGateway {
    TestGateway::start(&format!(
        "{}\n[limits]\n{limits}\n",
        config_text(&redis.url())
    ))
    .await
}

/// Read until the server closes the connection (or `within` passes): what it sent, and
/// whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

const SHORT: &str = "header_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"";

#[tokio::test]
async fn headers_sent_a_byte_a_second_are_cut_off() {
    let redis = RedisServer::start();
    let gw = gateway(&redis, SHORT).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"POST /webhooks/twilio/acme HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // The slow client: one more header byte a second, for far longer than the timeout.
    let slow = tokio::spawn(async move {
        for b in b"X-Slow: aaaaaaaaaaaaaaaaaaaa".iter() {
            if writer.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // a 408 is fine too; the close is what matters
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    slow.abort();
    assert!(closed.is_ok(), "the slow client was never cut off");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "cut off after {elapsed:?}, expected about the 1 s header timeout"
    );
    // The gateway still serves others.
    assert_eq!(http(gw.addr, "GET", "/healthz", &[], b"").await.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn huge_or_too_many_headers_get_431() {
    let redis = RedisServer::start();
    let gw = gateway(&redis, "max_header_bytes = 4096\nmax_headers = 20").await;
    let big = "a".repeat(8 * 1024);
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 431") || (answer.is_empty() && closed),
        "{answer:?}"
    );
    assert!(closed);

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let mut request = "GET /healthz HTTP/1.1\r\nHost: x\r\n".to_string();
    for i in 0..30 {
        request.push_str(&format!("X-H{i}: v\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");

    // Just under both limits: served.
    let headers: Vec<(String, String)> = (0..10)
        .map(|i| (format!("X-H{i}"), "v".repeat(100)))
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        http(gw.addr, "GET", "/healthz", &headers, b"").await.status,
        200
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_off_with_408() {
    let redis = RedisServer::start();
    let before = redis.snapshot();
    let gw = gateway(&redis, SHORT).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(
            b"POST /webhooks/twilio/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nBody=STOP&From=%2B1415",
        )
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let elapsed = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("body not received within 1s"), "{answer:?}");
    assert!(closed, "the connection is closed after a stalled body");
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    assert_eq!(redis.snapshot(), before, "nothing written");
    gw.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_close_and_requests_per_connection_are_capped() {
    let redis = RedisServer::start();
    let gw = gateway(&redis, &format!("{SHORT}\nmax_requests_per_connection = 2")).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    // One request, then idle: served, then closed after the header timeout.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(closed, "an idle keep-alive connection is closed");
    assert!(started.elapsed() < Duration::from_secs(4));

    // Two requests on one connection: the second answer says close, and it closes.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    stream.write_all(request).await.unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_millis(900)).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer:?}");
    assert!(
        closed,
        "closed after its second request, before the idle timeout"
    );
    let second = answer
        .rsplit("HTTP/1.1 200")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(second.contains("connection: close"), "{answer:?}");
    gw.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_one() {
    let redis = RedisServer::start();
    let gw = gateway(&redis, "header_read_timeout = \"30s\"\nmax_connections = 2").await;
    let idle_a = TcpStream::connect(gw.addr).await.unwrap();
    let _idle_b = TcpStream::connect(gw.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut third, Duration::from_secs(1)).await;
    assert_eq!(
        answer, "",
        "a third connection is not served while two are open"
    );
    drop(idle_a);
    let (answer, closed) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(closed);
    gw.stop().await;
}

#[tokio::test]
async fn normal_requests_still_work_with_the_defaults() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(&config_text(&redis.url())).await;
    let p = inbound_sms("SM44444444444444444444444444444444", "+14155550000", "STOP");
    let r = gw.twilio("/webhooks/twilio/acme", TWILIO_TOKEN, &p).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Keep-alive: several requests on one connection.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
    }
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_millis(500)).await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 3, "{answer:?}");
    assert!(!closed, "the default keeps the connection open");
    gw.stop().await;
}

#[test]
fn bad_limits_are_named() {
    let text = format!(
        "{}\n[limits]\nheader_read_timeout = \"0s\"\nmax_connections = 0\nmax_header_bytes = 10\nbody_read_timeout = \"soon\"\n",
        config_text("redis://127.0.0.1:1/")
    );
    let problems = dndgate::config::Config::parse(&text, std::path::Path::new(".")).unwrap_err();
    let all = problems.join("\n");
    for expected in [
        "limits.header_read_timeout must be longer than 0s",
        "limits.max_connections is 0: it must be at least 1",
        "limits.max_header_bytes is 10: it must be at least 1024",
        "limits.body_read_timeout:",
    ] {
        assert!(all.contains(expected), "{expected} not in:\n{all}");
    }
}
