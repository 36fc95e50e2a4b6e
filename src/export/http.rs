//! A deliberately small HTTP/1.1 client: one `POST` per connection, over TCP or a unix domain
//! socket, with every step (connect, write, read) bounded by one deadline.
//!
//! It exists because the uploader needs three things the small crates lack together: unix
//! sockets (the Agent's default on many hosts), a multipart body built by us, and a hard
//! deadline on the whole exchange, so a silent Agent can never hold the exit flush.
//!
//! Sockets are non-blocking and waited on with `poll(2)`, and every write uses
//! `MSG_NOSIGNAL`: a peer that hangs up must not raise SIGPIPE, whose default action would
//! kill the profiled program.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::AgentUrl;

/// The most of the response head (status line and headers) we keep; the rest is ignored.
const MAX_HEAD: usize = 16 * 1024;
/// Part of a response body quoted in error messages.
const MAX_EXCERPT: usize = 200;

/// What went wrong, in the categories the uploader acts on.
#[derive(Debug)]
pub enum Error {
    /// Could not resolve the Agent's host name.
    Resolve(io::Error),
    /// Connecting failed (refused, no such socket, unreachable, …).
    Connect(io::Error),
    /// The deadline passed; `stage` says during what.
    Timeout { stage: &'static str },
    /// The connection broke while sending or receiving.
    Io {
        stage: &'static str,
        error: io::Error,
    },
    /// The peer answered something that is not HTTP, or closed without answering.
    BadResponse(String),
}

impl Error {
    /// Nothing accepts connections at the address: refused, or the unix socket is missing.
    pub fn is_nobody_listening(&self) -> bool {
        matches!(self, Error::Connect(e) if matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound))
    }

    /// Failures worth trying again soon: nobody listening yet, or the connection was dropped.
    pub fn is_transient(&self) -> bool {
        let kind = match self {
            Error::Connect(e) | Error::Io { error: e, .. } => e.kind(),
            _ => return false,
        };
        matches!(
            kind,
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::NotFound
                | io::ErrorKind::NotConnected
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Resolve(e) => write!(f, "cannot resolve the host name ({e})"),
            Error::Connect(e) => write!(f, "cannot connect ({e})"),
            Error::Timeout { stage } => write!(f, "timed out while {stage}"),
            Error::Io { stage, error } => write!(f, "connection failed while {stage} ({error})"),
            Error::BadResponse(what) => write!(f, "unexpected answer: {what}"),
        }
    }
}

/// The status line and the start of the body of an answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// At most a couple of hundred bytes of the body, for messages.
    pub body_excerpt: String,
}

/// Sends `POST path` with `headers` and `body` to the Agent and returns its answer, or fails
/// once `deadline` passes (connect, write and read included).
pub fn post(
    agent: &AgentUrl,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    deadline: Instant,
) -> Result<Response, Error> {
    let (socket, host_header) = match agent {
        AgentUrl::Http { host, port } => {
            let socket = connect_tcp(host, *port, deadline)?;
            let host_header = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            (socket, host_header)
        }
        AgentUrl::Unix { path } => (connect_unix(path, deadline)?, "localhost".to_string()),
    };
    let fd = socket.as_raw_fd();
    let head = request_head(path, &host_header, headers, body.len());
    send_all(fd, head.as_bytes(), deadline)?;
    send_all(fd, body, deadline)?;
    read_response(fd, deadline)
}

/// The request line and headers; `Connection: close` because each upload uses its own
/// connection (one a period is not worth keeping alive).
fn request_head(path: &str, host: &str, headers: &[(&str, &str)], body_len: usize) -> String {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {body_len}\r\n");
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn connect_tcp(host: &str, port: u16, deadline: Instant) -> Result<OwnedFd, Error> {
    // Name resolution has no timeout of its own; for the usual `localhost` or an IP literal
    // it is immediate.
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(Error::Resolve)?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Resolve(io::Error::new(
            io::ErrorKind::NotFound,
            "no address",
        )));
    }
    let mut last = None;
    for addr in addrs {
        let left = remaining(deadline);
        if left.is_zero() {
            return Err(Error::Timeout {
                stage: "connecting",
            });
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                stream.set_nonblocking(true).map_err(Error::Connect)?;
                return Ok(OwnedFd::from(stream));
            }
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                last = Some(Error::Timeout {
                    stage: "connecting",
                });
            }
            Err(e) => last = Some(Error::Connect(e)),
        }
    }
    Err(last.unwrap_or(Error::Timeout {
        stage: "connecting",
    }))
}

/// std's `UnixStream::connect` blocks without limit when the listener's backlog is full, so
/// the connect is done by hand on a non-blocking socket.
fn connect_unix(path: &Path, deadline: Instant) -> Result<OwnedFd, Error> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(Error::Connect(io::Error::new(
            io::ErrorKind::InvalidInput,
            "unix socket path too long",
        )));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: plain socket creation.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(Error::Connect(io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    loop {
        // SAFETY: addr is a valid sockaddr_un of at least `len` bytes.
        let rc = unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) };
        if rc == 0 {
            return Ok(owned);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EINPROGRESS) => {
                wait_fd(fd, libc::POLLOUT, deadline, "connecting")?;
                return match socket_error(fd) {
                    None => Ok(owned),
                    Some(e) => Err(Error::Connect(e)),
                };
            }
            // The listener's backlog is full: try again shortly, until the deadline.
            Some(libc::EAGAIN) => {
                if remaining(deadline).is_zero() {
                    return Err(Error::Timeout {
                        stage: "connecting",
                    });
                }
                std::thread::sleep(remaining(deadline).min(Duration::from_millis(10)));
            }
            _ => return Err(Error::Connect(error)),
        }
    }
}

fn socket_error(fd: RawFd) -> Option<io::Error> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: err and len are valid out-pointers of the right size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Some(io::Error::last_os_error());
    }
    (err != 0).then(|| io::Error::from_raw_os_error(err))
}

/// Waits until `fd` is ready for `events` or the deadline passes.
fn wait_fd(
    fd: RawFd,
    events: libc::c_short,
    deadline: Instant,
    stage: &'static str,
) -> Result<(), Error> {
    loop {
        let left = remaining(deadline);
        if left.is_zero() {
            return Err(Error::Timeout { stage });
        }
        // Round up so a sub-millisecond remainder still waits rather than spins.
        let ms = left.as_millis().saturating_add(1).min(i32::MAX as u128) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: pfd is one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return Ok(());
        }
        if rc < 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::Io { stage, error });
            }
        }
    }
}

fn send_all(fd: RawFd, mut data: &[u8], deadline: Instant) -> Result<(), Error> {
    const STAGE: &str = "sending the request";
    while !data.is_empty() {
        // SAFETY: data is valid for its length; MSG_NOSIGNAL keeps SIGPIPE away.
        let n = unsafe {
            libc::send(
                fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            data = &data[n as usize..];
            continue;
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => wait_fd(fd, libc::POLLOUT, deadline, STAGE)?,
            _ => {
                return Err(Error::Io {
                    stage: STAGE,
                    error,
                })
            }
        }
    }
    Ok(())
}

/// Reads until the end of the response head (or the connection closes) and parses the status
/// line. The body is not needed, except a little of it for error messages.
fn read_response(fd: RawFd, deadline: Instant) -> Result<Response, Error> {
    const STAGE: &str = "waiting for the answer";
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break Some(end);
        }
        if buf.len() >= MAX_HEAD {
            break None;
        }
        // SAFETY: chunk is valid for its length.
        let n = unsafe {
            libc::recv(
                fd,
                chunk.as_mut_ptr().cast(),
                chunk.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            buf.extend_from_slice(&chunk[..n as usize]);
            continue;
        }
        if n == 0 {
            break None;
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => wait_fd(fd, libc::POLLIN, deadline, STAGE)?,
            _ => {
                // A reset after a complete status line still tells us the outcome.
                if find(&buf, b"\r\n").is_some() {
                    break None;
                }
                return Err(Error::Io {
                    stage: STAGE,
                    error,
                });
            }
        }
    };
    parse_response(&buf, head_end)
}

fn parse_response(buf: &[u8], head_end: Option<usize>) -> Result<Response, Error> {
    if buf.is_empty() {
        return Err(Error::BadResponse(
            "the connection was closed without an answer".into(),
        ));
    }
    let Some(line_end) = find(buf, b"\r\n") else {
        return Err(Error::BadResponse(format!(
            "incomplete answer: {:?}",
            excerpt(buf)
        )));
    };
    let line = String::from_utf8_lossy(&buf[..line_end.min(200)]);
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s));
    let (true, Some(status)) = (version.starts_with("HTTP/1."), status) else {
        return Err(Error::BadResponse(format!("not HTTP: {:?}", excerpt(buf))));
    };
    let reason = parts.next().unwrap_or("").trim().to_string();
    let body = head_end.map(|end| &buf[end + 4..]).unwrap_or(&[]);
    Ok(Response {
        status,
        reason,
        body_excerpt: excerpt(body),
    })
}

fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_EXCERPT)];
    let text = String::from_utf8_lossy(cut).trim().to_string();
    if bytes.len() > MAX_EXCERPT {
        format!("{text}…")
    } else {
        text
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn local(listener: &TcpListener) -> AgentUrl {
        AgentUrl::Http {
            host: "127.0.0.1".into(),
            port: listener.local_addr().unwrap().port(),
        }
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    /// Accepts one connection, reads the whole request (head + Content-Length bytes), answers
    /// `reply`, and returns what it read.
    fn serve_once(listener: TcpListener, reply: &'static [u8]) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = s.read(&mut chunk).unwrap();
                got.extend_from_slice(&chunk[..n]);
                if let Some(end) = find(&got, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&got[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if got.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            s.write_all(reply).unwrap();
            got
        })
    }

    #[test]
    fn posts_and_parses_the_status() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = local(&listener);
        let server = serve_once(
            listener,
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",
        );
        let body = vec![7u8; 300_000];
        let r = post(&url, "/x/y", &[("X-A", "b")], &body, soon(5000)).unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.body_excerpt.as_str()),
            (202, "Accepted", "ok")
        );
        let got = server.join().unwrap();
        let end = find(&got, b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&got[..end]);
        assert!(head.starts_with("POST /x/y HTTP/1.1\r\n"), "{head}");
        assert!(head.contains(&format!(
            "\r\nHost: 127.0.0.1:{}",
            match url {
                AgentUrl::Http { port, .. } => port,
                _ => unreachable!(),
            }
        )));
        assert!(
            head.contains("\r\nContent-Length: 300000") && head.contains("\r\nX-A: b"),
            "{head}"
        );
        assert_eq!(&got[end + 4..], &body[..]);
    }

    #[test]
    fn unix_socket() {
        let dir = std::env::temp_dir().join(format!("ddprof-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let mut got = Vec::new();
            while find(&got, b"hello").is_none() {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.0 500 Oops\r\n\r\nbroken").unwrap();
            got
        });
        let r = post(
            &AgentUrl::Unix { path: path.clone() },
            "/p",
            &[],
            b"hello",
            soon(5000),
        )
        .unwrap();
        assert_eq!((r.status, r.body_excerpt.as_str()), (500, "broken"));
        assert!(String::from_utf8_lossy(&server.join().unwrap()).contains("Host: localhost\r\n"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_unix_socket_is_transient() {
        let e = post(
            &AgentUrl::Unix {
                path: "/nonexistent/dir/x.sock".into(),
            },
            "/",
            &[],
            b"",
            soon(1000),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Connect(_)) && e.is_transient(), "{e}");
    }

    #[test]
    fn refused_is_transient() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = post(
            &AgentUrl::Http {
                host: "127.0.0.1".into(),
                port,
            },
            "/",
            &[],
            b"x",
            soon(1000),
        )
        .unwrap_err();
        assert!(e.is_transient(), "{e}");
    }

    #[test]
    fn silent_peer_times_out_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = local(&listener);
        let started = Instant::now();
        // Big enough to fill the socket buffers of a peer that never reads.
        let body = vec![0u8; 64 << 20];
        let e = post(&url, "/", &[], &body, soon(300)).unwrap_err();
        let took = started.elapsed();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert!(!e.is_transient());
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(800),
            "{took:?}"
        );
        // A small request that is fully sent then waits for an answer that never comes.
        let started = Instant::now();
        let e = post(&url, "/", &[], b"x", soon(200)).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Timeout {
                    stage: "waiting for the answer"
                }
            ),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_millis(700));
        drop(listener);
    }

    #[test]
    fn peer_closing_early_is_an_error_not_a_signal() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = local(&listener);
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (s, _) = listener.accept().unwrap();
                drop(s);
            }
        });
        // The peer closes with our data unread: the kernel answers with a reset, and a write
        // after it would raise SIGPIPE without MSG_NOSIGNAL (killing this test binary).
        let body = vec![1u8; 8 << 20];
        for _ in 0..2 {
            let e = post(&url, "/", &[], &body, soon(3000)).unwrap_err();
            assert!(matches!(e, Error::Io { .. } | Error::BadResponse(_)), "{e}");
        }
        server.join().unwrap();
    }

    #[test]
    fn garbage_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = local(&listener);
        let server = serve_once(listener, b"SSH-2.0-OpenSSH\r\n");
        let e = post(&url, "/", &[], b"x", soon(3000)).unwrap_err();
        assert!(
            matches!(&e, Error::BadResponse(m) if m.contains("SSH")),
            "{e}"
        );
        server.join().unwrap();
    }

    #[test]
    fn parse_status_lines() {
        let raw = b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\nno such path";
        let r = parse_response(raw, find(raw, b"\r\n\r\n")).unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.body_excerpt.as_str()),
            (404, "Not Found", "no such path")
        );
        assert!(parse_response(b"HTTP/1.1 abc\r\n", None).is_err());
        assert!(parse_response(b"", None).is_err());
        assert!(parse_response(b"HTTP/2 200\r\n", None).is_err());
        let r = parse_response(b"HTTP/1.1 200\r\n", None).unwrap();
        assert_eq!((r.status, r.reason.as_str()), (200, ""));
        assert!(
            parse_response(b"HTTP/1.1 200", None).is_err(),
            "a cut status line is not an answer"
        );
    }
}
