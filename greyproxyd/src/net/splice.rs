//! Zero-copy relay of raw tunnels with `splice(2)`: each direction moves bytes socket → pipe →
//! socket inside the kernel, so the daemon never copies them through user space.
//!
//! Integration with tokio's readiness: a direction waits for its source to be readable, then
//! splices from it into the (non-blocking) pipe inside [`TcpStream::try_io`], so an `EAGAIN`
//! clears exactly the readiness it belongs to; it then waits for the destination to be writable
//! and splices pipe → socket the same way until the pipe is empty. The pipe is only filled when
//! it is empty, so an `EAGAIN` from a fill always means "the source socket has nothing" and one
//! from a drain always means "the destination socket is full" — never "the pipe is full" or
//! "the pipe is empty", which would otherwise clear a socket's readiness by mistake and stall.
//!
//! Each direction creates its pipe on its first read (a direction that never carries bytes
//! costs no descriptors) at the kernel's default size, and grows it to [`PIPE_MAX`] the first
//! time a single read fills it (bulk transfer). When a pipe cannot be created (descriptor
//! limit) or the kernel refuses to splice (`EINVAL`/`ENOSYS`), that direction falls back to a
//! plain user-space copy; this is only decided while the pipe is empty, so no byte is lost.

use std::io;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::Shutdown;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Capacity a direction's pipe grows to once a single read fills it (`F_SETPIPE_SZ`). 1 MiB is
/// also the default `/proc/sys/fs/pipe-max-size`. Pipe capacity counts against the user's
/// `/proc/sys/fs/pipe-user-pages-soft` (64 MiB by default, not enforced for root); beyond it
/// the kernel refuses to grow pipes (they keep their size, the relay still works) and makes
/// new ones small.
pub(crate) const PIPE_MAX: usize = 1 << 20;

/// Buffer of the user-space fallback copy, per direction.
const COPY_BUF: usize = 64 * 1024;

/// Capacity assumed when `F_GETPIPE_SZ` fails (the kernel's default: 16 pages).
const PIPE_DEFAULT: usize = 64 * 1024;

/// One direction's pipe: what the source socket is spliced into.
struct Pipe {
    rd: OwnedFd,
    wr: OwnedFd,
    /// Current capacity in bytes: the most one fill asks for.
    cap: usize,
    /// Whether growing was tried already (once per pipe).
    grown: bool,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (rd, wr) = rustix::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        let cap = rustix::pipe::fcntl_getpipe_size(&wr).unwrap_or(PIPE_DEFAULT);
        Ok(Pipe {
            rd,
            wr,
            cap,
            grown: false,
        })
    }

    /// Grows the pipe to [`PIPE_MAX`]; keeps the current size when the kernel refuses.
    fn grow(&mut self) {
        self.grown = true;
        match rustix::pipe::fcntl_setpipe_size(&self.wr, PIPE_MAX) {
            Ok(cap) => self.cap = cap,
            Err(e) => tracing::trace!(error = %e, "tunnel pipe not grown"),
        }
    }
}

/// Relays bytes both ways between `a` and `b` until both directions have reached end of file
/// (each EOF is passed on as a write shutdown of the other socket, so half-closed connections
/// keep working) or either fails. `a_to_b` and `b_to_a` count the bytes delivered so far, also
/// when the future is dropped early (cancellation).
pub(crate) async fn relay(
    a: &TcpStream,
    b: &TcpStream,
    a_to_b: &mut u64,
    b_to_a: &mut u64,
) -> io::Result<()> {
    tokio::try_join!(one_way(a, b, a_to_b), one_way(b, a, b_to_a)).map(|_| ())
}

/// Whether a splice error means "not supported for these descriptors" (fall back to copying).
fn unsupported(e: &io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(Errno::INVAL.raw_os_error()) || code == Some(Errno::NOSYS.raw_os_error())
}

/// Passes an end of file on: shuts down writing on `to`. A peer that is already gone is not an
/// error here (the other direction reports what happened to it).
fn half_close(to: &TcpStream) -> io::Result<()> {
    match rustix::net::shutdown(to, Shutdown::Write) {
        Ok(()) | Err(Errno::NOTCONN) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// One direction with splice: `from` → pipe → `to`, until EOF on `from`.
async fn one_way(from: &TcpStream, to: &TcpStream, moved: &mut u64) -> io::Result<()> {
    from.readable().await?;
    let mut p = match Pipe::new() {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "no pipe for the tunnel: copying instead");
            return copy_one_way(from, to, moved).await;
        }
    };
    loop {
        from.readable().await?;
        // The pipe is empty here (every fill is drained before the next one).
        let cap = p.cap;
        let filled = from.try_io(Interest::READABLE, || {
            rustix::pipe::splice(from, None, &p.wr, None, cap, SpliceFlags::NONBLOCK)
                .map_err(io::Error::from)
        });
        let n = match filled {
            Ok(0) => return half_close(to),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if unsupported(&e) => {
                tracing::debug!(error = %e, "splice refused for the tunnel: copying instead");
                return copy_one_way(from, to, moved).await;
            }
            Err(e) => return Err(e),
        };
        if n >= cap && !p.grown {
            p.grow();
        }
        drain(&p, to, n, moved).await?;
    }
}

/// Splices the `n` bytes in `p` into `to`, waiting for `to` to be writable as needed.
async fn drain(p: &Pipe, to: &TcpStream, mut n: usize, moved: &mut u64) -> io::Result<()> {
    while n > 0 {
        to.writable().await?;
        let sent = to.try_io(Interest::WRITABLE, || {
            rustix::pipe::splice(&p.rd, None, to, None, n, SpliceFlags::NONBLOCK)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "splice into the socket moved nothing",
                ));
            }
            Ok(m) => {
                n -= m.min(n);
                *moved += m as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One direction through a user-space buffer (the fallback when splicing is not possible).
async fn copy_one_way(from: &TcpStream, to: &TcpStream, moved: &mut u64) -> io::Result<()> {
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        from.readable().await?;
        let n = match from.try_read(&mut buf) {
            Ok(0) => return half_close(to),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        write_all(to, &buf[..n], moved).await?;
    }
}

/// Writes all of `data` to `to` through `&TcpStream` readiness, counting into `moved`.
pub(crate) async fn write_all(to: &TcpStream, mut data: &[u8], moved: &mut u64) -> io::Result<()> {
    while !data.is_empty() {
        to.writable().await?;
        match to.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(m) => {
                data = &data[m..];
                *moved += m as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::net::relay as tunnel;

    /// A connected pair of loopback sockets: (outer end, end the relay gets).
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        (c.unwrap(), s.unwrap().0)
    }

    /// client ⇄ [relay] ⇄ origin: returns (client, origin, relay's client side, relay's
    /// upstream side).
    /// Runs the relay between the two proxy-side ends; yields the (up, down) byte counts.
    fn spawn_relay(
        rc: TcpStream,
        ru: TcpStream,
    ) -> tokio::task::JoinHandle<io::Result<(u64, u64)>> {
        tokio::spawn(async move {
            let (mut up, mut down) = (0, 0);
            relay(&rc, &ru, &mut up, &mut down)
                .await
                .map(|()| (up, down))
        })
    }

    async fn tunnel_ends() -> (TcpStream, TcpStream, TcpStream, TcpStream) {
        let (client, rc) = pair().await;
        let (origin, ru) = pair().await;
        (client, origin, rc, ru)
    }

    /// Deterministic pseudo-random bytes (xorshift64), so the receiver can check every byte.
    struct Gen(u64);
    impl Gen {
        fn fill(&mut self, buf: &mut [u8]) {
            for chunk in buf.chunks_mut(8) {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                let b = self.0.to_le_bytes();
                chunk.copy_from_slice(&b[..chunk.len()]);
            }
        }
    }

    /// Sends `total` generated bytes (seed `seed`) in writes that are not a power of two (a
    /// multiple of 8, so that the stream is the generator's output without gaps), then shuts
    /// down.
    async fn send_stream(mut w: impl AsyncWriteExt + Unpin, seed: u64, total: usize) {
        let mut g = Gen(seed);
        let mut buf = vec![0u8; 100_000];
        let mut left = total;
        while left > 0 {
            let n = left.min(buf.len());
            g.fill(&mut buf[..n]);
            w.write_all(&buf[..n]).await.unwrap();
            left -= n;
        }
        w.shutdown().await.unwrap();
    }

    /// Reads to EOF, checking the bytes against the generator; returns how many arrived.
    async fn check_stream(mut r: impl AsyncReadExt + Unpin, seed: u64) -> usize {
        let mut g = Gen(seed);
        let mut got = 0usize;
        let mut buf = vec![0u8; 77_777];
        let mut want = Vec::new();
        // Generated bytes not consumed yet (the generator emits 8 at a time).
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                return got;
            }
            while pending.len() < n {
                let mut block = [0u8; 4096];
                g.fill(&mut block);
                pending.extend_from_slice(&block);
            }
            want.clear();
            want.extend(pending.drain(..n));
            if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
                panic!("corrupt byte at offset {}", got + i);
            }
            got += n;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_transfer_both_ways_intact() {
        const SIZE: usize = 32 << 20;
        let (client, origin, rc, ru) = tunnel_ends().await;
        let relay = tokio::spawn(async move {
            let (mut up, mut down) = (0, 0);
            relay(&rc, &ru, &mut up, &mut down).await.unwrap();
            (up, down)
        });
        let (cr, cw) = client.into_split();
        let (or, ow) = origin.into_split();
        let (got_up, got_down, (), ()) = tokio::join!(
            check_stream(or, 1),
            check_stream(cr, 2),
            send_stream(cw, 1, SIZE),
            send_stream(ow, 2, SIZE),
        );
        assert_eq!((got_up, got_down), (SIZE, SIZE));
        let counts = relay.await.unwrap();
        assert_eq!(counts, (SIZE as u64, SIZE as u64));
    }

    #[tokio::test]
    async fn early_bytes_go_first_and_are_counted() {
        let (mut client, mut origin, rc, ru) = tunnel_ends().await;
        let relay = tokio::spawn(tunnel::relay(
            rc,
            ru,
            b"hello ",
            None,
            CancellationToken::new(),
        ));
        client.write_all(b"world").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        origin.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello world");
        origin.write_all(b"bye").await.unwrap();
        drop(origin);
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"bye");
        assert_eq!(relay.await.unwrap().unwrap(), (11, 3));
    }

    /// The client stops sending (EOF upstream) and still gets the whole answer.
    #[tokio::test]
    async fn half_close_from_client() {
        let (mut client, mut origin, rc, ru) = tunnel_ends().await;
        let relay = spawn_relay(rc, ru);
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        origin.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        // The other direction still runs after the EOF went through.
        let answer = vec![7u8; 3 << 20];
        origin.write_all(&answer).await.unwrap();
        origin.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, answer);
        assert_eq!(relay.await.unwrap().unwrap(), (7, 3 << 20));
    }

    /// The origin finishes its answer first (EOF to the client) and keeps reading.
    #[tokio::test]
    async fn half_close_from_origin() {
        let (mut client, mut origin, rc, ru) = tunnel_ends().await;
        let relay = spawn_relay(rc, ru);
        origin.write_all(b"banner").await.unwrap();
        origin.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"banner");
        let upload = vec![9u8; 3 << 20];
        client.write_all(&upload).await.unwrap();
        client.shutdown().await.unwrap();
        let mut up = Vec::new();
        origin.read_to_end(&mut up).await.unwrap();
        assert_eq!(up, upload);
        assert_eq!(relay.await.unwrap().unwrap(), (3 << 20, 6));
    }

    /// An origin that resets ends the relay with an error, and the client is hung up on.
    #[tokio::test]
    async fn peer_reset_ends_the_relay() {
        let (mut client, mut origin, rc, ru) = tunnel_ends().await;
        let relay = tokio::spawn(tunnel::relay(rc, ru, b"", None, CancellationToken::new()));
        client.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        origin.read_exact(&mut b).await.unwrap();
        // Unread bytes at close make the kernel send a reset; so does a zero linger.
        origin.set_zero_linger().unwrap();
        drop(origin);
        let r = tokio::time::timeout(Duration::from_secs(5), relay)
            .await
            .expect("relay did not end")
            .unwrap();
        let e = r.expect_err("a reset is an error");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{e:?}"
        );
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
            .await
            .expect("client not hung up on");
        assert!(rest.is_empty());
    }

    /// Revoking the rule cuts a busy tunnel (the origin keeps sending, nobody reads).
    #[tokio::test]
    async fn revocation_cuts_a_busy_tunnel() {
        let (mut client, mut origin, rc, ru) = tunnel_ends().await;
        let revoked = CancellationToken::new();
        let relay = tokio::spawn(tunnel::relay(
            rc,
            ru,
            b"",
            Some(revoked.clone()),
            CancellationToken::new(),
        ));
        let flood = tokio::spawn(async move {
            let buf = vec![1u8; 1 << 16];
            while origin.write_all(&buf).await.is_ok() {}
        });
        // Let the tunnel fill up (client reads nothing yet).
        tokio::time::sleep(Duration::from_millis(100)).await;
        revoked.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), relay)
            .await
            .expect("relay not cut")
            .unwrap();
        let (_, down) = r.unwrap();
        assert!(down > 0, "some bytes were relayed before the cut");
        // The client sees the connection end (after whatever was already delivered).
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut sink))
            .await
            .expect("client not hung up on");
        // The origin's writes fail once the relay's upstream side is gone.
        tokio::time::timeout(Duration::from_secs(5), flood)
            .await
            .expect("origin still writing")
            .unwrap();
    }

    /// Shutdown's end of grace cuts an idle tunnel.
    #[tokio::test]
    async fn shutdown_cuts_an_idle_tunnel() {
        let (mut client, _origin, rc, ru) = tunnel_ends().await;
        let shutdown = CancellationToken::new();
        let relay = tokio::spawn(tunnel::relay(rc, ru, b"", None, shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        shutdown.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), relay)
            .await
            .expect("relay not cut")
            .unwrap();
        assert_eq!(r.unwrap(), (0, 0));
        let mut b = [0u8; 1];
        assert_eq!(client.read(&mut b).await.unwrap(), 0);
    }

    /// The user-space fallback moves the same bytes and passes EOF on too.
    #[tokio::test]
    async fn copy_fallback_direction() {
        let (mut client, mut origin, rc, ru) = tunnel_ends().await;
        let relay = tokio::spawn(async move {
            let mut n = 0;
            copy_one_way(&rc, &ru, &mut n).await.map(|()| n)
        });
        let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
        let (sent, got) = tokio::join!(
            async {
                client.write_all(&data).await.unwrap();
                client.shutdown().await.unwrap();
            },
            async {
                let mut got = Vec::new();
                origin.read_to_end(&mut got).await.unwrap();
                got
            }
        );
        let () = sent;
        assert_eq!(got, data);
        assert_eq!(relay.await.unwrap().unwrap(), 1 << 20);
    }

    #[test]
    fn pipe_grows_to_the_maximum_or_keeps_its_size() {
        let mut p = Pipe::new().unwrap();
        let before = p.cap;
        assert!(before >= 4096);
        p.grow();
        assert!(p.grown);
        assert!(p.cap == PIPE_MAX || p.cap == before, "{}", p.cap);
    }
}
