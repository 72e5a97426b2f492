//! The DNS forwarder end to end: a stub upstream (UDP and TCP) written here answers
//! `example.test`; queries through the daemon's forwarder come back unchanged over UDP and TCP;
//! a SOCKS5 CONNECT to the answered IP is then pending under the hostname, is allowed by a rule
//! on the hostname, and the IP → hostname cache survives a restart.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use greyproxy_testkit::origin::echo_origin;
use greyproxy_testkit::raw::{SocksTarget, echo_roundtrip, read_socks_reply, socks5_send};
use greyproxy_testkit::{Daemon, DaemonBuilder};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// The address `example.test` resolves to (an origin listens there).
const ORIGIN_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 100);
/// Its AAAA answer (documentation range; never connected to).
const ORIGIN_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
/// An address no DNS answer mentions.
const UNNAMED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 101);

/// The stub upstream's answer to one query: `example.test` A/AAAA, `big.test` truncated over
/// UDP (TC set, no answers) and complete over TCP, NXDOMAIN for anything else.
fn stub_answer(query: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries.first()?.clone();
    let mut m = Message::response(q.metadata.id, OpCode::Query);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.add_query(question.clone());
    let name = question.name().to_ascii().to_ascii_lowercase();
    match (name.as_str(), question.query_type()) {
        ("example.test.", RecordType::A) => {
            m.add_answer(Record::from_rdata(
                question.name().clone(),
                300,
                RData::A(A(ORIGIN_IP)),
            ));
        }
        ("example.test.", RecordType::AAAA) => {
            m.add_answer(Record::from_rdata(
                question.name().clone(),
                300,
                RData::AAAA(AAAA(ORIGIN_V6)),
            ));
        }
        ("big.test.", _) if !tcp => m.metadata.truncation = true,
        ("big.test.", _) => {
            for i in 0..40 {
                m.add_answer(Record::from_rdata(
                    question.name().clone(),
                    300,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, i))),
                ));
            }
        }
        _ => m.metadata.response_code = ResponseCode::NXDomain,
    }
    m.to_vec().ok()
}

/// Starts the stub upstream on one loopback port (UDP and TCP); returns it and a query counter.
async fn stub_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    // The UDP port the kernel picks may be taken for TCP (another test's listener, a socket
    // in TIME_WAIT): pick again until both protocols have it.
    let mut attempt = 0;
    let (udp, addr, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        match TcpListener::bind(addr).await {
            Ok(tcp) => break (udp, addr, tcp),
            Err(_) if attempt < 50 => attempt += 1,
            Err(e) => panic!("no port free for both UDP and TCP: {e}"),
        }
    };
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            count.fetch_add(1, Ordering::SeqCst);
            if let Some(a) = stub_answer(&buf[..n], false) {
                let _ = udp.send_to(&a, peer).await;
            }
        }
    });
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                while let Ok(len) = s.read_u16().await {
                    let mut q = vec![0u8; usize::from(len)];
                    if s.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let Some(a) = stub_answer(&q, true) else {
                        return;
                    };
                    let mut framed = (a.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&a);
                    if s.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn query(id: u16, name: &str, ty: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
    m.to_vec().unwrap()
}

async fn ask_udp(server: SocketAddr, q: &[u8]) -> Message {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(q, server).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf))
        .await
        .expect("UDP answer within 5 s")
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

async fn ask_tcp(server: SocketAddr, q: &[u8]) -> Message {
    let mut s = TcpStream::connect(server).await.unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    s.write_all(&framed).await.unwrap();
    let read = async {
        let n = s.read_u16().await.unwrap();
        let mut a = vec![0u8; usize::from(n)];
        s.read_exact(&mut a).await.unwrap();
        a
    };
    let a = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("TCP answer within 5 s");
    Message::from_vec(&a).unwrap()
}

fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn daemon(upstream: SocketAddr) -> DaemonBuilder {
    DaemonBuilder::new(env!("CARGO_BIN_EXE_greyproxyd")).args(&[
        "--dns-upstream",
        &upstream.to_string(),
        "--dns-addr",
        "127.0.0.1:0",
    ])
}

async fn socks_to(d: &Daemon, ip: Ipv4Addr, port: u16, user: &str) -> TcpStream {
    let target = SocksTarget::Ip(SocketAddr::new(IpAddr::V4(ip), port));
    socks5_send(d.socks.unwrap(), &target, Some((user, "x"))).await
}

#[tokio::test]
async fn forwarder_answers_over_udp_and_tcp_unchanged() {
    let (up, seen) = stub_upstream().await;
    let d = daemon(up).start().await;
    let dns = d.dns.expect("DNS listener in daemon.json");
    let mut ws = d.client().await;
    let status = ws.query(json!({"command":"status"})).await;
    assert_eq!(status["listeners"]["dns"], dns.to_string(), "{status}");

    let a = ask_udp(dns, &query(0x1234, "example.test.", RecordType::A)).await;
    assert_eq!(a.metadata.id, 0x1234, "the client's id is kept");
    assert_eq!(addresses(&a), vec![IpAddr::V4(ORIGIN_IP)]);
    let aaaa = ask_tcp(dns, &query(0x4321, "Example.TEST.", RecordType::AAAA)).await;
    assert_eq!(aaaa.metadata.id, 0x4321);
    assert_eq!(addresses(&aaaa), vec![IpAddr::V6(ORIGIN_V6)]);
    let nx = ask_udp(dns, &query(7, "nothing.test.", RecordType::A)).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);

    // A truncated UDP answer comes back as it is; the client retries over TCP.
    let t = ask_udp(dns, &query(8, "big.test.", RecordType::A)).await;
    assert!(t.metadata.truncation && t.answers.is_empty(), "{t:?}");
    assert_eq!(
        addresses(&ask_tcp(dns, &query(9, "big.test.", RecordType::A)).await).len(),
        40
    );

    // Garbage is dropped without an answer, and the forwarder keeps serving.
    let before = seen.load(Ordering::SeqCst);
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(b"definitely not dns", dns).await.unwrap();
    let mut buf = [0u8; 512];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), s.recv_from(&mut buf))
            .await
            .is_err(),
        "no answer to garbage"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        before,
        "garbage is not forwarded"
    );
    let again = ask_udp(dns, &query(10, "example.test.", RecordType::A)).await;
    assert_eq!(addresses(&again), vec![IpAddr::V4(ORIGIN_IP)]);
}

#[tokio::test]
async fn connections_to_an_answered_ip_are_named_allowed_by_hostname_rules_and_remembered() {
    let (up, _) = stub_upstream().await;
    let origin = echo_origin(&ORIGIN_IP.to_string()).await;
    let other = echo_origin(&UNNAMED_IP.to_string()).await;
    let d = daemon(up).start().await;
    let dns = d.dns.unwrap();
    let a = ask_udp(dns, &query(1, "example.test.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![IpAddr::V4(ORIGIN_IP)]);

    let mut ws = d.client().await;
    let mut held = socks_to(&d, ORIGIN_IP, origin.port(), "agent").await;
    let p = ws
        .event_where("pending_request.created", |e| {
            e["destination_host"] == ORIGIN_IP.to_string()
        })
        .await["data"]
        .clone();
    assert_eq!(p["resolved_hostname"], "example.test", "{p}");
    let listed = ws
        .query(json!({"command":"list_pending","destination":"example.test"}))
        .await;
    assert_eq!(listed["items"][0]["id"], p["id"], "{listed}");
    assert_eq!(listed["items"][0]["resolved_hostname"], "example.test");

    // A rule on the hostname releases the held connection to the IP.
    let r = ws
        .cmd(json!({"command":"create_rule","container_pattern":"*",
            "destination_pattern":"example.test","port_pattern":"*","action":"allow"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let rep = tokio::time::timeout(Duration::from_secs(5), read_socks_reply(&mut held))
        .await
        .expect("released at once");
    assert_eq!(rep, Some(0));
    echo_roundtrip(&mut held, b"ping").await;
    drop(held);
    let log = ws
        .event_where("request_log.new", |e| {
            e["destination_host"] == ORIGIN_IP.to_string() && e["result"] == "allowed"
        })
        .await;
    assert_eq!(log["data"]["resolved_hostname"], "example.test", "{log}");
    ws.close().await;

    // After a restart, with no new DNS query, the name is still known: the rule applies at
    // once, while an IP no answer mentioned is held without a name.
    let d = d.restart().await;
    let mut ws = d.client().await;
    let mut s = socks_to(&d, ORIGIN_IP, origin.port(), "after-restart").await;
    let rep = tokio::time::timeout(Duration::from_secs(5), read_socks_reply(&mut s))
        .await
        .expect("allowed without a hold");
    assert_eq!(rep, Some(0));
    echo_roundtrip(&mut s, b"pong").await;
    let _unnamed = socks_to(&d, UNNAMED_IP, other.port(), "after-restart").await;
    let p = ws
        .event_where("pending_request.created", |e| {
            e["destination_host"] == UNNAMED_IP.to_string()
        })
        .await["data"]
        .clone();
    assert!(p["resolved_hostname"].is_null(), "{p}");
}

/// The acceptance, DNS half: after a lookup through the forwarder, `curl --socks5`
/// to the answered IP (curl sends the IP, not a name) is pending under the hostname.
#[tokio::test]
async fn curl_socks5_to_the_answered_ip_is_pending_under_the_hostname() {
    let (up, _) = stub_upstream().await;
    let origin = greyproxy_testkit::origin::http_origin(&ORIGIN_IP.to_string()).await;
    let d = daemon(up).start().await;
    let a = ask_tcp(d.dns.unwrap(), &query(2, "example.test.", RecordType::A)).await;
    assert_eq!(addresses(&a), vec![IpAddr::V4(ORIGIN_IP)]);
    let mut ws = d.client().await;
    let proxy = format!("x:x@{}", d.socks_proxy());
    let url = format!("http://{origin}/hello");
    let held =
        tokio::spawn(async move { greyproxy_testkit::curl(&["--socks5", &proxy, &url]).await });
    let p = ws.pending_for(&ORIGIN_IP.to_string(), origin.port()).await;
    assert_eq!(p["resolved_hostname"], "example.test", "{p}");
    assert_eq!(p["container_name"], "x");
    let r = ws
        .cmd(json!({"command":"allow","pending_id":p["id"],"scope":"exact"}))
        .await;
    assert_eq!(r["type"], "command_success", "{r}");
    let res = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("curl released")
        .unwrap();
    assert_eq!((res.exit, res.status), (0, 200), "{res:?}");
    // `exact` builds the rule from the name shown: the hostname, not the IP.
    let rules = ws
        .query(json!({"command":"list_rules","destination":"example.test"}))
        .await;
    assert_eq!(
        rules["items"][0]["destination_pattern"], "example.test",
        "{rules}"
    );
}
