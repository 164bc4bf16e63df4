//! Binary WebSocket frames for terminal output.
//!
//! Layout of a server→client output frame:
//! `[kind: u8 = 1][seq: u64 big-endian][bytes...]`, where `seq` is the byte
//! offset of the first payload byte in the session's output stream. Offsets are
//! cumulative across runs of a session, so `attach {since_seq}` and `ack {seq}`
//! name exact positions.

/// Frame kind byte of terminal output.
pub const KIND_OUTPUT: u8 = 1;

/// Size of the output frame header.
pub const OUTPUT_HEADER_LEN: usize = 9;

/// Encode an output frame.
pub fn encode_output(seq: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(OUTPUT_HEADER_LEN + bytes.len());
    out.push(KIND_OUTPUT);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Decode an output frame into `(seq, bytes)`; `None` if it is not one.
pub fn decode_output(frame: &[u8]) -> Option<(u64, &[u8])> {
    if frame.len() < OUTPUT_HEADER_LEN || frame[0] != KIND_OUTPUT {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&frame[1..OUTPUT_HEADER_LEN]);
    Some((u64::from_be_bytes(seq), &frame[OUTPUT_HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_round_trip() {
        let f = encode_output(123_456_789, b"hello\x1b[0m");
        assert_eq!(decode_output(&f), Some((123_456_789, &b"hello\x1b[0m"[..])));
        assert_eq!(decode_output(&[2, 0, 0]), None);
        assert_eq!(decode_output(&[1, 0]), None);
    }
}
