//! The session's output log (a sequence-numbered, bounded tail) and the
//! hybrid launcher's phase report (which arrives on the run's result
//! channel, never in the output stream).

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

/// Longest phase report the session reads from the hybrid launcher's
/// channel (the launcher cuts the exception's name to 100 characters).
pub(crate) const MAX_PHASE_REPORT: usize = 128;

/// The hybrid launcher's phase report: `repl`, or `repl;raised=NAME` when
/// the script raised (NAME: the exception's class, ASCII letters, digits,
/// `_` and `.`), one line on the run's result channel (never in the output).
/// Returns the exception's name (if any), or `None` for anything else.
pub(crate) fn parse_phase_report(report: &[u8]) -> Option<PhaseReport> {
    let line = report.strip_suffix(b"\n").unwrap_or(report);
    if line.len() > MAX_PHASE_REPORT {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let mut fields = text.split(';');
    if fields.next() != Some("repl") {
        return None;
    }
    let mut raised = None;
    for field in fields {
        let name = field.strip_prefix("raised=")?;
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'));
        if !ok {
            return None;
        }
        raised = Some(name.to_string());
    }
    Some(PhaseReport { raised })
}

/// What the hybrid launcher reported when the REPL started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PhaseReport {
    /// The exception the script raised, if it did.
    pub raised: Option<String>,
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
    fn the_phase_report_names_the_raised_exception() {
        assert_eq!(
            parse_phase_report(b"repl\n"),
            Some(PhaseReport { raised: None })
        );
        assert_eq!(
            parse_phase_report(b"repl;raised=ZeroDivisionError\n"),
            Some(PhaseReport {
                raised: Some("ZeroDivisionError".into())
            })
        );
        assert_eq!(
            parse_phase_report(b"repl;raised=pkg.Error_2"),
            Some(PhaseReport {
                raised: Some("pkg.Error_2".into())
            })
        );
    }

    #[test]
    fn a_malformed_phase_report_is_ignored() {
        let mut long = b"repl;raised=".to_vec();
        long.extend(std::iter::repeat_n(b'A', MAX_PHASE_REPORT));
        for bad in [
            &b""[..],
            b"script",
            b"repl;raised=",
            b"repl;raised=Bad Name",
            b"repl;other=1",
            b"\x1b]7771;campus;phase=repl\x07",
            b"repl\xff",
            &long,
        ] {
            assert_eq!(parse_phase_report(bad), None, "{bad:?}");
        }
    }
}
