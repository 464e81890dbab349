//! A raw PostgreSQL simple-protocol client: sends exactly the bytes a client such as Grafana
//! sends and returns every message the server answers, so tests can check what drivers hide
//! (ParameterStatus, EmptyQueryResponse, text encodings).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One backend message, decoded as far as tests need.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// `T`: column names.
    RowDescription(Vec<String>),
    /// `D`: text values (None for NULL).
    DataRow(Vec<Option<String>>),
    /// `C`: command tag.
    CommandComplete(String),
    /// `I`.
    EmptyQuery,
    /// `E`: SQLSTATE and message.
    Error { code: String, message: String },
    /// `S` after startup (also sent on SET).
    ParameterStatus(String, String),
    /// `N`.
    Notice,
}

/// A connected, authenticated (trust) simple-protocol session.
pub struct RawPg {
    stream: TcpStream,
    /// ParameterStatus values from startup.
    pub parameters: HashMap<String, String>,
}

impl RawPg {
    /// Connects and logs in as `user` to `database` with extra startup `params`.
    pub fn connect(addr: SocketAddr, user: &str, database: &str, params: &[(&str, &str)]) -> RawPg {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // SSLRequest first, as libpq-based clients with sslmode=prefer do: expect 'N'.
        stream
            .write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
            .unwrap();
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(
            answer[0], b'N',
            "SSLRequest without TLS configured is answered 'N'"
        );
        let mut body = Vec::new();
        body.extend_from_slice(&196608u32.to_be_bytes());
        let mut kv = vec![("user", user), ("database", database)];
        kv.extend_from_slice(params);
        for (k, v) in kv {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        stream.write_all(&packet).unwrap();
        let mut pg = RawPg {
            stream,
            parameters: HashMap::new(),
        };
        loop {
            let (tag, payload) = pg.read_message();
            match tag {
                b'R' => assert_eq!(&payload[..4], &[0, 0, 0, 0], "trust: AuthenticationOk"),
                b'S' => {
                    let (k, v) = two_strings(&payload);
                    pg.parameters.insert(k, v);
                }
                b'K' => {}
                b'Z' => break,
                b'E' => panic!("startup failed: {:?}", decode(b'E', &payload)),
                other => panic!("unexpected message {:?} during startup", other as char),
            }
        }
        pg
    }

    /// Sends one simple-protocol Query and returns the messages up to ReadyForQuery.
    pub fn query(&mut self, sql: &str) -> Vec<Msg> {
        let mut packet = vec![b'Q'];
        packet.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
        packet.extend_from_slice(sql.as_bytes());
        packet.push(0);
        self.stream.write_all(&packet).unwrap();
        let mut out = Vec::new();
        loop {
            let (tag, payload) = self.read_message();
            if tag == b'Z' {
                return out;
            }
            out.push(decode(tag, &payload));
        }
    }

    /// The rows of a query that must succeed, as text.
    pub fn rows(&mut self, sql: &str) -> (Vec<String>, Vec<Vec<Option<String>>>) {
        let messages = self.query(sql);
        let mut columns = Vec::new();
        let mut rows = Vec::new();
        for m in messages {
            match m {
                Msg::RowDescription(c) => columns = c,
                Msg::DataRow(r) => rows.push(r),
                Msg::Error { code, message } => panic!("{sql}\n  failed: {code} {message}"),
                _ => {}
            }
        }
        (columns, rows)
    }

    fn read_message(&mut self) -> (u8, Vec<u8>) {
        let mut header = [0u8; 5];
        self.stream
            .read_exact(&mut header)
            .expect("reading a message");
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut payload = vec![0u8; len - 4];
        self.stream.read_exact(&mut payload).unwrap();
        (header[0], payload)
    }
}

fn two_strings(payload: &[u8]) -> (String, String) {
    let mut parts = payload.split(|b| *b == 0);
    let k = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let v = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    (k, v)
}

fn decode(tag: u8, p: &[u8]) -> Msg {
    match tag {
        b'T' => {
            let n = u16::from_be_bytes([p[0], p[1]]) as usize;
            let mut names = Vec::new();
            let mut at = 2;
            for _ in 0..n {
                let end = at + p[at..].iter().position(|b| *b == 0).unwrap();
                names.push(String::from_utf8_lossy(&p[at..end]).into_owned());
                at = end + 1 + 18;
            }
            Msg::RowDescription(names)
        }
        b'D' => {
            let n = u16::from_be_bytes([p[0], p[1]]) as usize;
            let mut values = Vec::new();
            let mut at = 2;
            for _ in 0..n {
                let len = i32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
                at += 4;
                if len < 0 {
                    values.push(None);
                } else {
                    let len = len as usize;
                    values.push(Some(String::from_utf8_lossy(&p[at..at + len]).into_owned()));
                    at += len;
                }
            }
            Msg::DataRow(values)
        }
        b'C' => Msg::CommandComplete(two_strings(p).0),
        b'I' => Msg::EmptyQuery,
        b'S' => {
            let (k, v) = two_strings(p);
            Msg::ParameterStatus(k, v)
        }
        b'N' => Msg::Notice,
        b'E' => {
            let mut code = String::new();
            let mut message = String::new();
            for field in p.split(|b| *b == 0) {
                match field.first() {
                    Some(b'C') => code = String::from_utf8_lossy(&field[1..]).into_owned(),
                    Some(b'M') => message = String::from_utf8_lossy(&field[1..]).into_owned(),
                    _ => {}
                }
            }
            Msg::Error { code, message }
        }
        other => panic!("unexpected message {:?}", other as char),
    }
}
