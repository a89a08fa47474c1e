//! A TCP proxy that can silently stop forwarding, like a network path that drops every
//! packet: sockets stay open, no FIN, no RST, bytes vanish.
//!
//! A connection that had bytes dropped stays dead after [`Blackhole::resume`] (its byte
//! stream has a hole, as after a lost NAT entry); connections opened or first used after
//! the resume work. Idle connections survive a blackhole, as on a real network. The
//! upstream side of a dead connection is never closed while the proxy runs, so the server
//! cannot learn from us that the client went away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Blackhole {
    pub addr: SocketAddr,
    dropping: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let dropping = Arc::new(AtomicBool::new(false));
        let flag = dropping.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        pump(client, server, flag).await;
                    }
                });
            }
        });
        Self {
            addr,
            dropping,
            accept,
        }
    }

    /// Stops forwarding: every byte from now on is dropped.
    pub fn blackhole(&self) {
        self.dropping.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.dropping.store(false, Ordering::SeqCst);
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pump(mut client: TcpStream, mut server: TcpStream, dropping: Arc<AtomicBool>) {
    let mut dead = false;
    let mut server_open = true;
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = client.read(&mut up) => match n {
                Ok(0) | Err(_) if dead => {
                    // The client gave up on a dead connection; its FIN is lost too. Keep
                    // the server side open (idle) until the proxy goes away.
                    std::future::pending::<()>().await;
                }
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    dead |= dropping.load(Ordering::SeqCst);
                    if !dead && server.write_all(&up[..n]).await.is_err() {
                        return;
                    }
                }
            },
            n = server.read(&mut down), if server_open => match n {
                Ok(0) | Err(_) if dead => server_open = false,
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    dead |= dropping.load(Ordering::SeqCst);
                    if !dead && client.write_all(&down[..n]).await.is_err() {
                        return;
                    }
                }
            },
        }
    }
}
