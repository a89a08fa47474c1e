//! The HTTP edge every server shares (src/http_server.rs), as a hostile or broken client
//! meets it on the real `ampd admin-api`: stalled clients are dropped and cannot starve a
//! real one, bodies are bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Opens a connection that sends part of its headers and then nothing.
fn stalled(addr: &str, partial: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(partial).expect("write");
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_stalled_clients_do_not_starve_a_real_one() {
    let (pg, _pool) = migrated_db().await;
    let (_api, addr) = start_admin_api(&pg.url(), &["--http-header-timeout", "3s"]).await;
    let opened = Instant::now();
    let mut held: Vec<TcpStream> = (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                stalled(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            } else {
                stalled(&addr, b"")
            }
        })
        .collect();
    println!(
        "1,000 stalled connections opened in {:.1?}",
        opened.elapsed()
    );

    let started = Instant::now();
    let (code, body) = http_get(&addr, "/workers").expect("GET /workers");
    let took = started.elapsed();
    assert_eq!((code, body.as_str()), (200, r#"{"workers":[]}"#));
    assert!(
        took < Duration::from_secs(1),
        "a real client waited {took:?}"
    );
    println!("GET /workers beside 1,000 stalled connections: {took:.1?}");

    // The stalled clients are dropped once the header timeout (3 s) has passed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut dropped = 0;
    for s in &mut held {
        s.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10)),
        ))
        .unwrap();
        let mut buf = [0u8; 256];
        // EOF (or a 408 followed by EOF) means the server let go.
        match s.read(&mut buf) {
            Ok(_) => dropped += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => dropped += 1,
            Err(_) => {}
        }
    }
    let waited = opened.elapsed();
    assert_eq!(
        dropped, 1000,
        "stalled connections still held after {waited:?}"
    );
    println!(
        "all 1,000 dropped by the server {waited:.1?} after they connected (header timeout 3 s)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_are_bounded() {
    let (pg, _pool) = migrated_db().await;
    let (_api, addr) = start_admin_api(&pg.url(), &[]).await;
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST /workers HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
}
