//! Decoders for the engine's streamed answers, fed chunk by chunk in
//! whatever pieces the socket delivers.
//!
//! - Logs and exec output of a container without a TTY come multiplexed:
//!   frames of an 8-byte header `[type, 0, 0, 0, len as u32 big-endian]`
//!   then `len` bytes; type 0 stdin, 1 stdout, 2 stderr, 3 systemerr (an
//!   error from the engine itself, e.g. an exec that could not start).
//! - With a TTY the stream is raw bytes.
//! - Image load/import answer with JSON objects, one per line, where an
//!   `error`/`errorDetail` inside a 200 answer means the operation failed.

use bytes::{Buf, Bytes, BytesMut};
use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Stdin,
    Stdout,
    Stderr,
    /// The engine's own error message about the stream.
    System,
}

/// Incremental decoder of multiplexed frames (or raw TTY bytes).
pub(crate) struct FrameDecoder {
    raw: bool,
    buf: BytesMut,
}

impl FrameDecoder {
    /// `tty`: the container/exec runs with a TTY, so the stream is raw.
    pub fn new(tty: bool) -> Self {
        FrameDecoder {
            raw: tty,
            buf: BytesMut::new(),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, if one is buffered.
    pub(crate) fn next_frame(&mut self) -> Result<Option<(Channel, Bytes)>> {
        if self.raw {
            if self.buf.is_empty() {
                return Ok(None);
            }
            return Ok(Some((Channel::Stdout, self.buf.split().freeze())));
        }
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let channel = match self.buf[0] {
            0 => Channel::Stdin,
            1 => Channel::Stdout,
            2 => Channel::Stderr,
            3 => Channel::System,
            t => {
                return Err(Error::failed(format!(
                    "the engine sent a stream frame of unknown type {t}"
                )))
            }
        };
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        self.buf.advance(8);
        Ok(Some((channel, self.buf.split_to(len).freeze())))
    }

    /// At end of stream: bytes left over mean the stream was cut mid-frame.
    pub fn finish(&self) -> Result<()> {
        if self.raw || self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::failed(format!(
                "the engine's stream ended inside a frame ({} bytes left over)",
                self.buf.len()
            )))
        }
    }
}

/// Incremental decoder of a JSON-lines stream.
#[derive(Default)]
pub(crate) struct JsonLines {
    buf: Vec<u8>,
}

impl JsonLines {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete JSON object. `at_end` also takes a last line that
    /// has no newline.
    pub(crate) fn next_value(&mut self, at_end: bool) -> Result<Option<Value>> {
        loop {
            let line = match self.buf.iter().position(|&b| b == b'\n') {
                Some(i) => self.buf.drain(..=i).collect::<Vec<u8>>(),
                None if at_end && !self.buf.is_empty() => std::mem::take(&mut self.buf),
                None => return Ok(None),
            };
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            return serde_json::from_str(text).map(Some).map_err(|e| {
                Error::failed(format!(
                    "the engine sent an unreadable progress line {text:?}: {e}"
                ))
            });
        }
    }
}

/// The failure reported inside a 200 JSON stream, if this message is one.
pub(crate) fn stream_error(v: &Value) -> Option<String> {
    let detail = v.pointer("/errorDetail/message").and_then(Value::as_str);
    let err = v.get("error").and_then(Value::as_str);
    detail.or(err).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(t: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![t, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn decode_split(stream: &[u8], split: usize) -> (Vec<(Channel, Vec<u8>)>, Result<()>) {
        let mut d = FrameDecoder::new(false);
        let mut out = vec![];
        for part in [&stream[..split], &stream[split..]] {
            d.push(part);
            while let Some((c, b)) = d.next_frame().unwrap() {
                out.push((c, b.to_vec()));
            }
        }
        let fin = d.finish();
        (out, fin)
    }

    #[test]
    fn frames_split_at_every_byte() {
        let mut s = frame(1, b"Upgrade complete.\n");
        s.extend(frame(2, b"warn"));
        s.extend(frame(3, b"exec failed"));
        s.extend(frame(1, b""));
        s.extend(frame(0, b"in"));
        let want = vec![
            (Channel::Stdout, b"Upgrade complete.\n".to_vec()),
            (Channel::Stderr, b"warn".to_vec()),
            (Channel::System, b"exec failed".to_vec()),
            (Channel::Stdout, vec![]),
            (Channel::Stdin, b"in".to_vec()),
        ];
        for split in 0..=s.len() {
            let (got, fin) = decode_split(&s, split);
            assert_eq!(got, want, "split at {split}");
            fin.unwrap();
        }
    }

    #[test]
    fn frames_byte_by_byte_and_truncated() {
        let s = frame(1, &[7u8; 300]);
        let mut d = FrameDecoder::new(false);
        let mut n = 0;
        for b in &s {
            d.push(std::slice::from_ref(b));
            while let Some((_, p)) = d.next_frame().unwrap() {
                n += p.len();
            }
        }
        assert_eq!(n, 300);
        for cut in 1..s.len() {
            let (_, fin) = decode_split(&s[..cut], 0);
            assert!(fin.is_err(), "cut at {cut} must be an error");
        }
    }

    #[test]
    fn unknown_frame_type_is_an_error() {
        let mut d = FrameDecoder::new(false);
        d.push(&frame(9, b"x"));
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn tty_streams_are_raw() {
        let mut d = FrameDecoder::new(true);
        d.push(b"\x01\x00hello");
        assert_eq!(
            d.next_frame().unwrap().unwrap().1.as_ref(),
            b"\x01\x00hello"
        );
        d.finish().unwrap();
    }

    #[test]
    fn json_lines_split_at_every_byte() {
        let s = b"{\"stream\":\"Loaded image: a:1\\n\"}\r\n\n{\"errorDetail\":{\"message\":\"bad\"},\"error\":\"bad\"}\n{\"status\":\"sha256:ab\"}";
        for split in 0..=s.len() {
            let mut j = JsonLines::default();
            let mut got = vec![];
            j.push(&s[..split]);
            while let Some(v) = j.next_value(false).unwrap() {
                got.push(v);
            }
            j.push(&s[split..]);
            while let Some(v) = j.next_value(true).unwrap() {
                got.push(v);
            }
            assert_eq!(got.len(), 3, "split at {split}");
            assert_eq!(stream_error(&got[0]), None);
            assert_eq!(stream_error(&got[1]).as_deref(), Some("bad"));
            assert_eq!(got[2]["status"], "sha256:ab");
        }
    }

    #[test]
    fn json_lines_garbage_is_an_error() {
        let mut j = JsonLines::default();
        j.push(b"{not json\n");
        assert!(j.next_value(false).is_err());
    }
}
