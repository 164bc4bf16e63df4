//! The session's output log (a sequence-numbered, bounded tail) and the
//! stream filter that strips the hybrid launcher's private phase marker.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Chunks smaller than this are merged when appended, so a tail made of many
/// tiny frames does not cost one allocation per frame.
const MERGE_BELOW: usize = 4096;

/// Bytes `[start_seq, next_seq)` of a session's output stream, at most `cap` of them.
#[derive(Debug)]
pub(crate) struct OutputLog {
    chunks: VecDeque<Bytes>,
    start_seq: u64,
    len: usize,
    cap: usize,
}

/// What a replay from some offset yields.
#[derive(Debug)]
pub(crate) struct Replay {
    /// First offset replayed.
    pub from: u64,
    /// Requested bytes no longer kept.
    pub dropped: u64,
    /// `(seq, bytes)` frames, contiguous, ending at the log's `next_seq`.
    pub frames: Vec<(u64, Bytes)>,
}

impl OutputLog {
    /// An empty log keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        OutputLog {
            chunks: VecDeque::new(),
            start_seq: 0,
            len: 0,
            cap: cap.max(1),
        }
    }

    /// Offset after the last byte appended.
    pub fn next_seq(&self) -> u64 {
        self.start_seq + self.len as u64
    }

    /// Oldest offset still kept.
    #[cfg(test)]
    pub fn start_seq(&self) -> u64 {
        self.start_seq
    }

    /// Bytes kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Append bytes; the oldest bytes fall off the front beyond `cap`.
    pub fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        match self.chunks.back_mut() {
            Some(last) if last.len() + bytes.len() <= MERGE_BELOW => {
                let mut merged = BytesMut::with_capacity(last.len() + bytes.len());
                merged.extend_from_slice(last);
                merged.extend_from_slice(&bytes);
                *last = merged.freeze();
            }
            _ => self.chunks.push_back(bytes),
        }
        while self.len > self.cap {
            let over = self.len - self.cap;
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= over {
                let n = front.len();
                self.chunks.pop_front();
                self.len -= n;
                self.start_seq += n as u64;
            } else {
                // Copy the kept part so the dropped prefix's memory is really freed.
                *front = Bytes::copy_from_slice(&front[over..]);
                self.len -= over;
                self.start_seq += over as u64;
            }
        }
    }

    /// The bytes from `since` on, in frames of at most `max_frame` bytes.
    /// `since` beyond the end replays nothing; before the start reports `dropped`.
    pub fn replay(&self, since: u64, max_frame: usize) -> Replay {
        let next = self.next_seq();
        let from = since.clamp(self.start_seq, next);
        let dropped = self.start_seq.saturating_sub(since);
        let mut frames = Vec::new();
        let mut cur = BytesMut::new();
        let mut cur_seq = from;
        let mut pos = self.start_seq;
        for chunk in &self.chunks {
            let end = pos + chunk.len() as u64;
            if end > from {
                let skip = from.saturating_sub(pos) as usize;
                let mut rest = &chunk[skip..];
                while !rest.is_empty() {
                    let room = max_frame.max(1) - cur.len();
                    let take = room.min(rest.len());
                    cur.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if cur.len() >= max_frame.max(1) {
                        let n = cur.len() as u64;
                        frames.push((cur_seq, cur.split().freeze()));
                        cur_seq += n;
                    }
                }
            }
            pos = end;
        }
        if !cur.is_empty() {
            frames.push((cur_seq, cur.freeze()));
        }
        Replay {
            from,
            dropped,
            frames,
        }
    }
}

/// The private OSC sequence the hybrid launcher prints when the REPL starts:
/// this prefix, then `;raised=NAME` when the script raised (NAME: the
/// exception's class, ASCII letters, digits, `_` and `.`), then BEL.
pub(crate) const PHASE_REPL_MARKER: &[u8] = b"\x1b]7771;campus;phase=repl";
/// The byte that ends the marker.
const MARKER_END: u8 = 0x07;
/// Longest payload after the prefix (the launcher cuts the name to 100).
const MAX_PAYLOAD: usize = 128;

/// Result of feeding one chunk through [`MarkerStripper`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Stripped {
    /// Bytes before the marker (or all bytes when there was none).
    pub before: Vec<u8>,
    /// Set when the marker ended in this chunk: the bytes after it.
    pub after_marker: Option<Vec<u8>>,
    /// With the marker: the exception the script raised, if it did.
    pub script_error: Option<String>,
}

/// Removes the first complete phase marker from a byte stream that may split
/// it across reads. A partial match at the end of a chunk is held back until
/// the next chunk (or [`MarkerStripper::finish`]) decides it; anything that
/// turns out not to be a marker (a wrong byte, a payload too long or with a
/// byte outside the marker's alphabet) is released as ordinary output.
#[derive(Debug, Default)]
pub(crate) struct MarkerStripper {
    /// Bytes of the prefix matched so far.
    matched: usize,
    /// Payload bytes after a complete prefix.
    payload: Vec<u8>,
    found: bool,
}

fn payload_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b';' | b'=')
}

impl MarkerStripper {
    /// Filter one chunk.
    pub fn feed(&mut self, input: &[u8]) -> Stripped {
        if self.found {
            return Stripped {
                before: input.to_vec(),
                ..Stripped::default()
            };
        }
        let m = PHASE_REPL_MARKER;
        let mut before = Vec::with_capacity(input.len());
        for (i, &b) in input.iter().enumerate() {
            if self.matched < m.len() {
                if b == m[self.matched] {
                    self.matched += 1;
                    continue;
                }
            } else if b == MARKER_END {
                self.found = true;
                let script_error = self.take_error();
                self.matched = 0;
                return Stripped {
                    before,
                    after_marker: Some(input[i + 1..].to_vec()),
                    script_error,
                };
            } else if payload_byte(b) && self.payload.len() < MAX_PAYLOAD {
                self.payload.push(b);
                continue;
            }
            // Mismatch: what was held is ordinary output. The marker's first
            // byte (ESC) occurs nowhere else in it, so only `b` can restart a match.
            before.extend(self.release());
            if b == m[0] {
                self.matched = 1;
            } else {
                before.push(b);
            }
        }
        Stripped {
            before,
            ..Stripped::default()
        }
    }

    /// The held bytes, as output, and a reset match.
    fn release(&mut self) -> Vec<u8> {
        let mut held = PHASE_REPL_MARKER[..self.matched].to_vec();
        held.append(&mut self.payload);
        self.matched = 0;
        held
    }

    /// `raised=NAME` from the payload (`;`-separated fields, unknown ones ignored).
    fn take_error(&mut self) -> Option<String> {
        let payload = std::mem::take(&mut self.payload);
        let text = String::from_utf8_lossy(&payload);
        text.split(';')
            .find_map(|f| f.strip_prefix("raised="))
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    }

    /// End of stream: release a held partial match.
    pub fn finish(&mut self) -> Vec<u8> {
        self.release()
    }

    /// Bytes currently held back.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.matched + self.payload.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_bounded_and_replay_exact() {
        let mut log = OutputLog::new(10);
        for i in 0..30u8 {
            log.push(Bytes::copy_from_slice(&[i]));
        }
        assert_eq!(log.len(), 10);
        assert_eq!(log.start_seq(), 20);
        assert_eq!(log.next_seq(), 30);
        let r = log.replay(5, 4);
        assert_eq!((r.from, r.dropped), (20, 15));
        let all: Vec<u8> = r.frames.iter().flat_map(|(_, b)| b.to_vec()).collect();
        assert_eq!(all, (20..30).collect::<Vec<u8>>());
        assert_eq!(r.frames[0].0, 20);
        assert_eq!(r.frames[1].0, 24);
        let r = log.replay(27, 100);
        assert_eq!(r.frames, vec![(27, Bytes::from_static(&[27, 28, 29]))]);
        assert!(log.replay(30, 100).frames.is_empty());
        assert!(log.replay(99, 100).frames.is_empty());
    }

    #[test]
    fn big_chunks_are_trimmed_from_the_front() {
        let mut log = OutputLog::new(8000);
        log.push(Bytes::from(vec![1u8; 5000]));
        log.push(Bytes::from(vec![2u8; 5000]));
        assert_eq!(log.len(), 8000);
        assert_eq!(log.start_seq(), 2000);
        let r = log.replay(0, 100_000);
        assert_eq!(r.dropped, 2000);
        assert_eq!(r.frames[0].1.len(), 8000);
    }

    #[test]
    fn marker_is_stripped_across_every_split() {
        let mut stream = b"hello \x1b[1mbold\x1b]0;title\x07 ".to_vec();
        stream.extend_from_slice(PHASE_REPL_MARKER);
        stream.push(MARKER_END);
        stream.extend_from_slice(b">>> \x1b]7771;campus;phase=repl\x07again");
        for split in 0..stream.len() {
            let mut s = MarkerStripper::default();
            let mut before = Vec::new();
            let mut after = Vec::new();
            let mut found = false;
            for part in [&stream[..split], &stream[split..]] {
                let out = s.feed(part);
                if found {
                    after.extend(out.before);
                } else {
                    before.extend(out.before);
                }
                if let Some(rest) = out.after_marker {
                    found = true;
                    after.extend(rest);
                }
            }
            after.extend(s.finish());
            assert!(found, "split {split}");
            assert_eq!(
                before, b"hello \x1b[1mbold\x1b]0;title\x07 ",
                "split {split}"
            );
            // Only the first marker is stripped.
            assert_eq!(
                after, b">>> \x1b]7771;campus;phase=repl\x07again",
                "split {split}"
            );
        }
    }

    /// What one split of a stream came out as.
    struct Split {
        before: Vec<u8>,
        after: Vec<u8>,
        error: Option<String>,
        found: bool,
    }

    /// Feed `stream` split at every position.
    fn strip_at_every_split(stream: &[u8]) -> Vec<Split> {
        (0..stream.len())
            .map(|split| {
                let mut s = MarkerStripper::default();
                let mut r = Split {
                    before: Vec::new(),
                    after: Vec::new(),
                    error: None,
                    found: false,
                };
                for part in [&stream[..split], &stream[split..]] {
                    let out = s.feed(part);
                    if r.found {
                        r.after.extend(out.before);
                    } else {
                        r.before.extend(out.before);
                    }
                    if let Some(rest) = out.after_marker {
                        r.found = true;
                        r.error = out.script_error;
                        r.after.extend(rest);
                    }
                }
                if r.found {
                    r.after.extend(s.finish());
                } else {
                    r.before.extend(s.finish());
                }
                r
            })
            .collect()
    }

    #[test]
    fn the_raised_exception_travels_in_the_marker() {
        let stream = b"Traceback\r\nZeroDivisionError: x\r\n\x1b]7771;campus;phase=repl;raised=ZeroDivisionError\x07>>> ";
        for (split, r) in strip_at_every_split(stream).into_iter().enumerate() {
            assert!(r.found, "split {split}");
            assert_eq!(
                r.before, b"Traceback\r\nZeroDivisionError: x\r\n",
                "split {split}"
            );
            assert_eq!(r.after, b">>> ", "split {split}");
            assert_eq!(
                r.error.as_deref(),
                Some("ZeroDivisionError"),
                "split {split}"
            );
        }
    }

    #[test]
    fn a_malformed_marker_is_ordinary_output() {
        // A byte outside the payload alphabet, and a payload longer than allowed.
        let mut long = b"\x1b]7771;campus;phase=repl;raised=".to_vec();
        long.extend(std::iter::repeat_n(b'A', MAX_PAYLOAD + 10));
        long.extend_from_slice(b"\x07 tail");
        for stream in [
            b"a\x1b]7771;campus;phase=repl;raised=Bad Name\x07b".to_vec(),
            long,
        ] {
            for (split, r) in strip_at_every_split(&stream).into_iter().enumerate() {
                assert!(!r.found, "split {split}");
                assert_eq!(r.before, stream, "split {split}");
                assert!(r.after.is_empty());
            }
        }
    }

    #[test]
    fn partial_marker_at_end_is_released() {
        let mut s = MarkerStripper::default();
        assert_eq!(s.feed(b"ab\x1b]77").before, b"ab");
        assert_eq!(s.held(), 4);
        assert_eq!(s.finish(), b"\x1b]77");
        let mut s = MarkerStripper::default();
        s.feed(b"\x1b]77");
        assert_eq!(s.feed(b"\x1b]77x").before, b"\x1b]77\x1b]77x");
    }
}
